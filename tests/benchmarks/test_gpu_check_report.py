"""benchmarks/gpu_check_report.py: the summary a GPU run ends with, and the paper's run extrapolated."""

import json
import math

from gpu_check_commands import Settings
from gpu_check_report import finish, hours_for_paper_run, summary_markdown


def test_extrapolation_of_the_papers_run():
    # 10 000 updates x 1 000 sequences x 380 tokens at 1 000 000 words/s = 3 800 s
    assert math.isclose(hours_for_paper_run(1_000_000), 3800 / 3600)


def gpu_run(arch, task, precision, words_per_s):
    return {"arch": arch, "task": task, "precision": precision, "loss_first": 12.0, "loss_last": 11.2,
            "words_per_s": words_per_s, "sequences_per_s": words_per_s / 508, "tokens_per_sequence": 508.0,
            "min_gb_free": 120.0, "peak_allocated_gb": 19.5, "peak_nvidia_smi_gb": 22.1, "wall_s": 40.0}


def test_the_summary_of_a_gpu_run(tmp_path):
    """The table a GPU run ends with, from a report of its shape (formatting bugs would cost the device time)."""
    report = {
        "status": "passed", "total_s": 300.0,
        "settings": {"updates": 150, "batch_size": 32, "num_workers": 8, "cpu": False, "lr": 5e-4},
        "environment": {"python": "3.12.3", "cores": 16, "install_s": {"fairseq_and_plugin": 20.0},
                        "torch": "2.11.0", "cuda": "13.0", "fairseq": "0.12.3", "gpu": "NVIDIA H200",
                        "capability": "9.0", "gpu_memory_gb": 139.8, "gpus": 1},
        "pretrain": {"dnabert_bf16": gpu_run("genemask_dnabert_base", "genemask_mlm", "bf16", 400_000.0),
                     "dnabert_fp16": gpu_run("genemask_dnabert_base", "genemask_mlm", "fp16", 320_000.0),
                     "dnabert_masked_lm_bf16": gpu_run("genemask_dnabert_base", "masked_lm", "bf16", 380_000.0),
                     "logo_bf16": gpu_run("genemask_logo", "genemask_mlm", "bf16", 2_000_000.0)},
        "resume": {"from_update": 150, "to_update": 170, "loss": 11.1, "wall_s": 30.0},
        "validate": {"loss": 11.0, "wall_s": 10.0},
        "fewshot": {"metrics": {"accuracy": 0.61, "macro_f1": 0.6, "mcc": 0.2, "auroc": None, "n": 5920},
                    "prepare_s": 2.0, "finetune_s": 30.0, "evaluate_s": 5.0},
    }
    text = summary_markdown(report)
    assert "# GPU check: passed" in text and "NVIDIA H200" in text
    assert "genemask_mlm / masked_lm (same arch and precision): **1.05**" in text
    assert "bf16 / fp16: **1.25**" in text
    assert "| genemask_dnabert_base | 400000 | 2.6 | 60 h |" in text  # 3.8e9 tokens / 400 000 words/s
    assert "| genemask_logo | 2000000 | 0.5 | 20 h |" in text
    assert "accuracy 0.610" in text and "auroc" not in text  # None metrics are left out
    out, logs = tmp_path / "out", tmp_path / "work" / "logs"
    out.mkdir()
    logs.mkdir(parents=True)
    (logs / "dnabert_bf16.log").write_text("log\n")
    settings = Settings(out=out, work=tmp_path / "work", updates=150, batch_size=32, workers=8,
                                  cpu=False, log_interval=10, lr=5e-4, finetune_max_updates=None)
    finish(settings, report, say=lambda text: None)
    saved = json.loads((out / "summary.json").read_text())
    assert saved["extrapolated_hours"] == {"genemask_dnabert_base": 2.64, "genemask_logo": 0.53}
    assert (out / "summary.md").read_text() == text
