"""The GPU check's summary: the table printed at the end, summary.md, summary.json and logs.tar.gz."""

from __future__ import annotations

import json
import tarfile

from gpu_check_commands import Settings

# The paper's pretraining: 10 000 updates of 1 000 sequences; its chunks are 511 bases with p = 0.5, else uniform
# in 6..510, so 0.5 * 508 + 0.5 * 255 = ~380 tokens each.
PAPER_UPDATES, PAPER_SEQUENCES, PAPER_TOKENS = 10_000, 1_000, 380
PAPER_HOURS = {"genemask_dnabert_base": 60.0, "genemask_logo": 20.0}  # 2.5 days and ~20 h on 4 GTX 1080 Ti


def hours_for_paper_run(words_per_s: float) -> float:
    return PAPER_UPDATES * PAPER_SEQUENCES * PAPER_TOKENS / words_per_s / 3600


def summary_markdown(report: dict) -> str:
    env = report.get("environment", {})
    lines = [f"# GPU check: {report['status']}", "",
             f"{env.get('gpu') or 'CPU'} (compute capability {env.get('capability')}, {env.get('gpu_memory_gb')} GB), "
             f"{env.get('cores')} cores; torch {env.get('torch')} (CUDA {env.get('cuda')}), fairseq "
             f"{env.get('fairseq')}, Python {env.get('python')}; installs: {env.get('install_s') or 'none'}; "
             f"total {report['total_s']} s.", ""]
    pre = report.get("pretrain", {})
    if pre:
        st = report["settings"]
        lines += [f"Pretraining, {st['updates']} updates x {st['batch_size']} sequences, {st['num_workers']} data "
                  "workers (words/s and sequences/s: median over the logged intervals after the first):", "",
                  "| run | arch | task | precision | loss first → last | words/s | sequences/s | tokens/seq "
                  "| peak allocated GB | peak nvidia-smi GB | wall s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in pre.items():
            lines.append(f"| {name} | {r['arch']} | {r['task']} | {r['precision']} | {r['loss_first']:.3f} → "
                         f"{r['loss_last']:.3f} | {r['words_per_s']:.0f} | {r['sequences_per_s']:.1f} | "
                         f"{r['tokens_per_sequence']:.0f} | {r['peak_allocated_gb']} | {r['peak_nvidia_smi_gb']} "
                         f"| {r['wall_s']} |")
        lines.append("")
        ours = next((r for r in pre.values() if r["task"] == "genemask_mlm"), None)
        theirs = next((r for r in pre.values() if r["task"] == "masked_lm"), None)
        if ours and theirs:
            lines.append(f"words/s, genemask_mlm / masked_lm (same arch and precision): "
                         f"**{ours['words_per_s'] / theirs['words_per_s']:.2f}**")
        fp = [r for r in pre.values() if r["precision"] == "fp16" and r["task"] == "genemask_mlm"]
        if ours and fp:
            lines.append(f"words/s, bf16 / fp16: **{ours['words_per_s'] / fp[0]['words_per_s']:.2f}**")
        rows = [f"| {r['arch']} | {r['words_per_s']:.0f} | {hours_for_paper_run(r['words_per_s']):.1f} "
                f"| {PAPER_HOURS[r['arch']]:.0f} h |" for r in pre.values()
                if r["task"] == "genemask_mlm" and r["precision"] in ("bf16", "fp32") and r["arch"] in PAPER_HOURS]
        if rows:
            lines += ["", "The paper's pretraining (10 000 updates x 1 000 sequences x ~380 tokens) on one such GPU, "
                      "from the bf16 words/s above (measured on 508-token blocks; the paper's shorter blocks cost "
                      "less attention per token, so the hours are a slight overestimate):", "",
                      "| arch | words/s | hours here | paper: 4 GTX 1080 Ti |", "|---|---|---|---|", *rows]
        lines.append("")
    if "resume" in report:
        r = report["resume"]
        lines.append(f"Resume: continued at update {r['from_update']} to {r['to_update']}, loss {r['loss']:.3f}. "
                     f"fairseq-validate loss: {report.get('validate', {}).get('loss')}.")
    if "fewshot" in report:
        m = report["fewshot"]["metrics"]
        lines.append("Prom-core 10-shot from the resumed checkpoint: " + ", ".join(
            f"{k} {v:.3f}" for k, v in m.items() if isinstance(v, float)) + f" (fine-tune "
            f"{report['fewshot']['finetune_s']} s, evaluate {report['fewshot']['evaluate_s']} s).")
    return "\n".join(lines) + "\n"


def finish(s: Settings, report: dict, say) -> None:
    pre = report.get("pretrain", {})
    report["extrapolated_hours"] = {
        r["arch"]: round(hours_for_paper_run(r["words_per_s"]), 2) for r in pre.values()
        if r["task"] == "genemask_mlm" and r["precision"] in ("bf16", "fp32") and r["arch"] in PAPER_HOURS}
    (s.out / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    text = summary_markdown(report)
    (s.out / "summary.md").write_text(text)
    with tarfile.open(s.out / "logs.tar.gz", "w:gz") as tar:
        tar.add(s.work / "logs", arcname="logs")
    say("")
    say(text)
    if report["status"] != "passed":
        say(f"gpu_check: {report['status']}")
