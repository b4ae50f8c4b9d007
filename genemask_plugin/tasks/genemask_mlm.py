"""The ``genemask_mlm`` task: masked-LM pretraining on k-mer corpora with GeneMask masking.

The config fields are real types (no ``from __future__ import annotations``, and
``Optional`` rather than ``X | None``): fairseq builds the argparse flags from them. The
masking flags are generated from :class:`~genemask_plugin.masking.config.MaskingConfig`
(:class:`MaskingFlags`); the task wires the datasets and asks the strategy's registry entry
whether it needs a PMI table and whether it is a curriculum.
"""

import contextlib
import dataclasses
import hashlib
import logging
import math
import os
import sys
from dataclasses import dataclass, field, make_dataclass
from typing import Optional

import numpy as np
import torch
from fairseq import utils
from fairseq.data import Dictionary, PrependTokenDataset, SortDataset, data_utils
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II, MISSING

from genemask_plugin.checkpoints import LAST_CHECKPOINT, UNTRAINED_LM_HEAD, read_task_state
from genemask_plugin.data.block_table import BREAK_MODES
from genemask_plugin.data.genemask_mask_dataset import MASK_CANDIDATES, GeneMaskMaskDataset
from genemask_plugin.data.item_block_dataset import ItemBlockDataset
from genemask_plugin.masking.config import MaskingConfig
from genemask_plugin.masking.strategies import STRATEGIES, strategy_named
from genemask_plugin.models.position_init import (
    DEFAULT_POSITION_INIT_SCALE,
    POSITION_INIT_RANDOM,
    POSITION_INIT_SINUSOIDAL,
    init_positions_sinusoidal,
)
from genemask_preprocess.command_line import DEBUG_ENV, one_line
from genemask_preprocess.errors import GeneMaskError, InputError
from genemask_preprocess.formats.pmi_table import PMI_TABLE_VIEWS
from genemask_preprocess.kmers import kmer_size_of_symbols

logger = logging.getLogger(__name__)

SAMPLE_BREAK_MODE_CHOICES = ChoiceEnum(list(BREAK_MODES))
POSITION_INIT_CHOICES = ChoiceEnum([POSITION_INIT_RANDOM, POSITION_INIT_SINUSOIDAL])
NO_CURRICULUM = "none"
MIN_TOKENS_PER_SAMPLE = 3
"""<s>, one token and </s>."""
MAX_TOKENS_PER_SAMPLE = 1 << 20
"""Far beyond any model's positions; a larger number is a typo (the model's own limit is checked too)."""
MASKING_STATE = "masking"
PMI_TABLE_STATE = "pmi_table"
"""Task-state keys: the masking settings, and the PMI table's path and fingerprint, a checkpoint was trained with."""
CURRICULA = [name for name, strategy in STRATEGIES.items() if strategy.is_curriculum]
MASK_CURRICULUM_CHOICES = ChoiceEnum([NO_CURRICULUM, *CURRICULA])


class GeneMaskTaskError(InputError):
    """A bad ``genemask_mlm`` setting (one-line message)."""


def _under_fairseq_cli() -> bool:
    """True inside ``fairseq-train``/``fairseq-validate`` (console script or ``python -m fairseq_cli.X``)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return (getattr(spec, "name", "") or "").startswith("fairseq_cli.") or os.path.basename(
        sys.argv[0] if sys.argv else ""
    ).startswith("fairseq-")


@contextlib.contextmanager
def user_errors():
    """Under fairseq's commands, a bad table or option is ``genemask_mlm: error: ...`` and exit 1.

    fairseq would print a 40-50 line traceback whose last line is the cause; the cause alone
    is what a user needs, as from our own commands (``GENEMASK_DEBUG=1`` shows the traceback).
    Used as a library (tests, ``genemask-fewshot``), the error is raised as usual.
    """
    try:
        yield
    except GeneMaskError as err:
        if os.environ.get(DEBUG_ENV) or not _under_fairseq_cli():
            raise
        message = one_line(err).removeprefix("genemask_mlm: ")
        print(f"genemask_mlm: error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


def _masking_flag_fields() -> list[tuple]:
    """``(name, type, field)`` of one task field per MaskingConfig setting that is a flag."""
    out = []
    for name, setting in MaskingConfig.flags().items():
        choices = setting.metadata["choices"]
        flag_type = ChoiceEnum(list(choices)) if choices else setting.type
        out.append((name, flag_type, field(default=setting.default, metadata={"help": setting.metadata["help"]})))
    return out


MaskingFlags = make_dataclass("MaskingFlags", _masking_flag_fields(), bases=(FairseqDataclass,))
"""The masking flags: each MaskingConfig setting's name (``strategy``: ``mask_strategy``), type, default and help."""


@dataclass
class GeneMaskMLMConfig(MaskingFlags):
    data: str = field(
        default=MISSING,
        metadata={
            "help": "colon-separated data directories (dict.txt, {train,valid}.{bin,idx} from "
            "genemask-preprocess or fairseq-preprocess), used round-robin by epoch"
        },
    )
    tokens_per_sample: int = field(
        default=512,
        metadata={
            "help": "max tokens per sample, <s> included; longer chunks are split into blocks ending with </s>"
        },
    )
    sample_break_mode: SAMPLE_BREAK_MODE_CHOICES = field(
        default="eos",
        metadata={
            "help": "eos: one chunk per sample; complete: whole consecutive chunks packed into samples of up "
            "to --tokens-per-sample tokens, each keeping its </s> (as masked_lm's complete mode)"
        },
    )
    position_init: POSITION_INIT_CHOICES = field(
        default=POSITION_INIT_RANDOM,
        metadata={
            "help": "learned position embeddings of a freshly built model: random (fairseq's) or sinusoidal "
            "(the sin/cos table times --position-init-scale, then trained as usual); a loaded checkpoint "
            "keeps its own"
        },
    )
    position_init_scale: float = field(
        default=DEFAULT_POSITION_INIT_SCALE,
        metadata={"help": "scale of the sinusoidal position initialisation"},
    )
    pmi_table: Optional[str] = field(  # noqa: UP045 (fairseq needs a typing.Optional)
        default=None,
        metadata={
            "help": "PMI table TSV from genemask-pmi; its n == k rows score the k-mer tokens (pmi_span: its token "
            "n-grams, from genemask-pmi count --tokens, are the collocations). Required by "
            + ", ".join(name for name, strategy in STRATEGIES.items() if strategy.needs_pmi_table)
            + "; ignored by the others"
        },
    )
    pmi_column: str = field(
        default="npmi", metadata={"help": "PMI table column that ranks the tokens"}
    )
    mask_curriculum: MASK_CURRICULUM_CHOICES = field(
        default=NO_CURRICULUM,
        metadata={
            "help": "deprecated: --mask-curriculum C means --mask-strategy C (" + ", ".join(CURRICULA) + ")"
        },
    )
    # fairseq reuses the DataLoader and its workers across epochs by default, which
    # freezes the epoch-1 masks whenever --num-workers >= 1 (docs/genemask_mlm.md, fresh masks every epoch).
    persistent_workers: bool = field(
        default=False,
        metadata={"help": "keep data-loader workers across epochs (freezes masks; keep off)"},
    )
    reuse_dataloader: bool = field(
        default=False,
        metadata={"help": "reuse the data loader across epochs (freezes masks; keep off)"},
    )
    seed: int = II("common.seed")
    max_update: int = II("optimization.max_update")
    # Where fairseq-train resumes from: fairseq saves the task state in checkpoints but does not
    # give it back to the task on resume (Trainer.load_checkpoint), so the task reads it itself.
    restore_file: str = II("checkpoint.restore_file")
    save_dir: str = II("checkpoint.save_dir")


def check_task_options(cfg) -> None:
    """Range-check the task's own options (the masking ones are :class:`MaskingConfig`'s); one-line errors."""
    tokens = cfg.tokens_per_sample
    if not MIN_TOKENS_PER_SAMPLE <= tokens <= MAX_TOKENS_PER_SAMPLE:
        raise GeneMaskTaskError(
            f"--tokens-per-sample must be in {MIN_TOKENS_PER_SAMPLE}..{MAX_TOKENS_PER_SAMPLE} "
            f"(<s>, at least one token and </s>), got {tokens}"
        )
    scale = cfg.position_init_scale
    if not (scale > 0 and math.isfinite(scale)):
        raise GeneMaskTaskError(f"--position-init-scale must be a positive finite number, got {scale}")
    # A span wider than the sample masks what one as wide as the sample does; a far wider one
    # only costs memory (the span is built before it is clipped).
    if cfg.wide_half_width >= tokens:
        raise GeneMaskTaskError(
            f"--wide-half-width {cfg.wide_half_width} is wider than a sample (--tokens-per-sample {tokens}); "
            f"use at most {tokens - 1}"
        )


def pmi_fingerprint(scores) -> str:
    """A short content fingerprint of what a PMI table gives a dictionary: per-token scores, or
    ``pmi_span``'s collocations (their codes per n-gram length)."""
    digest = hashlib.sha256()
    if hasattr(scores, "codes"):  # Collocations
        for n, codes in sorted(scores.codes.items()):
            digest.update(f"{n}:{scores.base}:".encode())
            digest.update(np.ascontiguousarray(codes, dtype=np.int64).tobytes())
    else:
        digest.update(np.ascontiguousarray(scores, dtype=np.float64).tobytes())
    return digest.hexdigest()[:16]


@register_task("genemask_mlm", dataclass=GeneMaskMLMConfig)
class GeneMaskMLMTask(FairseqTask):
    """Masked-LM pretraining with GeneMask (or DNABERT/BERT) masking."""

    cfg: GeneMaskMLMConfig

    def __init__(self, cfg: GeneMaskMLMConfig, dictionary: Dictionary, load_pmi_table: bool = True):
        with user_errors():
            self._setup(cfg, dictionary, load_pmi_table)

    def _setup(self, cfg: GeneMaskMLMConfig, dictionary: Dictionary, load_pmi_table: bool) -> None:
        check_task_options(cfg)
        super().__init__(cfg)
        self.dictionary = dictionary
        self.mask_idx = dictionary.add_symbol("<mask>")
        self.kmer_size = kmer_size_of_symbols(dictionary.symbols)
        try:
            self.masking = MaskingConfig.from_flags(cfg, strategy=self._strategy_name(cfg), k=self.kmer_size)
            entry = self.masking.strategy_entry
            self.curriculum = (
                entry.curriculum(self.masking, cfg.seed, cfg.max_update or None) if entry.is_curriculum else None
            )
        except ValueError as err:
            raise GeneMaskTaskError(f"genemask_mlm: {err}") from None
        if self.kmer_size is None:
            logger.info("dictionary is not an overlapping k-mer vocabulary: the base mask span is one token")
        elif entry.paper_centre_prob_k not in (None, self.kmer_size) and cfg.centre_prob is None:
            logger.warning(
                f"k={self.kmer_size}: the default centre probability {self.masking.centre_prob} "
                f"was tuned for k={entry.paper_centre_prob_k}; set --centre-prob to target ~15% masked tokens"
            )
        self.token_scores = None
        if self.uses_pmi and load_pmi_table:
            self.token_scores = self._load_token_scores()
        if not self.uses_pmi and cfg.pmi_table:
            logger.info(f"--mask-strategy {self.masking.strategy} does not use --pmi-table")
        logger.info(f"masking: {self.masking}")
        if self.curriculum is not None:
            logger.info(
                f"mask curriculum {self.curriculum.describe()}; candidates: "
                + "; ".join(map(str, self.masking.candidates()))
            )
        self._curriculum_restored = False
        self._resume_checked = False
        self._first_valid_subset = False

    @staticmethod
    def _strategy_name(cfg: GeneMaskMLMConfig) -> str:
        """``--mask-strategy``, or the strategy the deprecated ``--mask-curriculum`` names (one warning)."""
        strategy, curriculum = str(cfg.mask_strategy), str(cfg.mask_curriculum)
        if curriculum == NO_CURRICULUM:
            return strategy
        # Old commands paired the curriculum with its first candidate (or left the default).
        expected = {MaskingConfig.flags()["mask_strategy"].default, curriculum}
        expected.update(candidate.name for candidate in strategy_named(curriculum).candidates)
        replaced = "" if strategy in expected else f", replacing --mask-strategy {strategy}"
        logger.warning(
            f"--mask-curriculum is deprecated: --mask-curriculum {curriculum} means --mask-strategy {curriculum}{replaced}"
        )
        return curriculum

    @property
    def uses_pmi(self) -> bool:
        return self.masking.uses_pmi

    @classmethod
    def setup_task(cls, cfg: GeneMaskMLMConfig, **kwargs):
        paths = utils.split_paths(cfg.data)
        with user_errors():
            if not paths:
                raise GeneMaskTaskError("no data directory given")
            dict_path = os.path.join(paths[0], "dict.txt")
            if not os.path.isfile(dict_path):
                raise GeneMaskTaskError(f"{dict_path}: no such file (is {paths[0]} a genemask-preprocess output?)")
        dictionary = Dictionary.load(dict_path)
        logger.info(f"dictionary: {len(dictionary)} types")
        # A checkpoint loaded for inference or fine-tuning needs no PMI table (its path may not
        # exist there): the table is then read only when a dataset is loaded.
        return cls(cfg, dictionary, load_pmi_table=not kwargs.get("from_checkpoint", False))

    def _load_token_scores(self):
        """What the strategy's lookup reads from ``--pmi-table``: a score per token, or (``pmi_span``) collocations."""
        if not self.cfg.pmi_table:
            raise GeneMaskTaskError(
                f"--mask-strategy {self.masking.strategy} needs --pmi-table (a table from genemask-pmi)"
            )
        lookup = self.masking.strategy_entry.pmi_lookup
        scores = PMI_TABLE_VIEWS[lookup.table_view](
            self.cfg.pmi_table, self.dictionary.symbols, column=self.cfg.pmi_column, **lookup.view_options(self.masking)
        )
        if not isinstance(scores, np.ndarray):
            logger.info(f"{scores} ({self.cfg.pmi_column})")
            return scores
        logger.info(
            f"PMI scores for {int(np.isfinite(scores).sum())} of {len(scores)} symbols "
            f"from {self.cfg.pmi_table} ({self.cfg.pmi_column})"
        )
        return scores

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        """Load ``split``: chunks -> blocks -> prepend <s> -> mask -> sort."""
        if self.uses_pmi and self.token_scores is None:
            with user_errors():
                self.token_scores = self._load_token_scores()
        paths = utils.split_paths(self.cfg.data)
        split_path = os.path.join(paths[(epoch - 1) % len(paths)], split)
        dataset = data_utils.load_indexed_dataset(split_path, self.dictionary, combine=combine)
        if dataset is None:
            raise FileNotFoundError(f"Dataset not found: {split} ({split_path}.{{bin,idx}})")

        dataset = ItemBlockDataset(
            dataset,
            dataset.sizes,
            self.cfg.tokens_per_sample - 1,  # one less for <s>
            eos=self.dictionary.eos(),
            break_mode=str(self.cfg.sample_break_mode),
        )
        if dataset.num_split_items:
            logger.info(
                f"{dataset.num_split_items} items longer than --tokens-per-sample were split"
            )
        logger.info(
            f"loaded {len(dataset)} blocks ({self.cfg.sample_break_mode}, "
            f"{float(np.mean(dataset.sizes)) if len(dataset) else 0:.1f} tokens on average) from: {split_path}"
        )
        dataset = PrependTokenDataset(dataset, self.dictionary.bos())
        dataset = GeneMaskMaskDataset(
            dataset,
            self.dictionary,
            self.mask_idx,
            self.masking,
            token_scores=self.token_scores,
            seed=self.cfg.seed,
        )
        shuffle = np.random.default_rng(self.cfg.seed).permutation(len(dataset))
        self.datasets[split] = SortDataset(dataset, sort_order=[shuffle, dataset.sizes])

    def build_model(self, cfg, from_checkpoint=False):
        """The model; a fresh one gets ``--position-init`` (fairseq loads a checkpoint's weights over it)."""
        model = super().build_model(cfg, from_checkpoint)
        positions = model.max_positions()
        if isinstance(positions, int) and self.cfg.tokens_per_sample > positions:
            with user_errors():
                raise GeneMaskTaskError(
                    f"--tokens-per-sample {self.cfg.tokens_per_sample} is more than the model's "
                    f"{positions} positions (--max-positions)"
                )
        if str(self.cfg.position_init) == POSITION_INIT_SINUSOIDAL and not from_checkpoint:
            init_positions_sinusoidal(model, self.cfg.position_init_scale)
            logger.info(f"position embeddings initialised to a sinusoid x {self.cfg.position_init_scale}")
        return model

    # ------------------------------------------------------------ mask curriculum

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        if self.curriculum is not None and sample and MASK_CANDIDATES in sample:
            self.curriculum.num_updates = update_num + 1  # done once this step is (for the logs)
            candidate = self.curriculum.batch_candidate(update_num, sample[MASK_CANDIDATES]["batch_ids"])
            sample = GeneMaskMaskDataset.batch_with_candidate(sample, candidate)
        return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    def valid_step(self, sample, model, criterion):
        if self.curriculum is not None:
            sample = GeneMaskMaskDataset.batch_with_candidate(sample, self.curriculum.validation_candidate())
        return super().valid_step(sample, model, criterion)

    def begin_epoch(self, epoch, model):
        # fairseq-train has loaded its checkpoint by the first epoch it begins.
        if not self._resume_checked:
            self._resume_checked = True
            self._check_resume()
        super().begin_epoch(epoch, model)

    def begin_valid_epoch(self, epoch, model):
        self._first_valid_subset = True
        super().begin_valid_epoch(epoch, model)

    def post_validate(self, model, stats, agg):
        """fairseq-train's hook after each validation subset: a curriculum sees the first subset's perplexity.

        Every rank sees the same all-reduced loss, so every rank switches at the same update.
        """
        if self.curriculum is None or not self._first_valid_subset:
            return
        self._first_valid_subset = False
        if "loss" not in agg or "num_updates" not in stats:
            return
        perplexity = 2 ** agg["loss"].avg  # the criterion's loss is in bits; 2**bits == exp(nats)
        if self.curriculum.observe_validation(stats["num_updates"], perplexity):
            logger.info(
                f"mask curriculum: validation perplexity {perplexity:.3f} changed the regime; "
                f"{self.curriculum.describe()}"
            )

    def _resumed_checkpoint(self) -> Optional[str]:  # noqa: UP045
        """The file fairseq-train resumes from (its rule for --restore-file), or None on a fresh start."""
        if self.cfg.restore_file == LAST_CHECKPOINT:
            path = os.path.join(self.cfg.save_dir, LAST_CHECKPOINT)
        else:
            path = self.cfg.restore_file
        return path if os.path.isfile(path) else None

    def _check_resume(self) -> None:
        """On resume: say (one line) what the checkpoint was trained with that this run changes, and
        restore a curriculum's state. Rank 0 reads the checkpoint, as fairseq loads it by default."""
        from fairseq.distributed import utils as distributed_utils

        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        state = None
        if not distributed or torch.distributed.get_rank() == 0:
            path = self._resumed_checkpoint()
            if path is not None:
                saved = read_task_state(path)
                changed = self._warn_about_changed_settings(path, saved)
                if self.curriculum is not None and not self._curriculum_restored:
                    state = saved.get("mask_curriculum")
                    if state is None and not changed:  # a changed strategy already says why
                        logger.warning(f"{path} holds no mask curriculum state: the curriculum starts afresh")
        if self.curriculum is None or self._curriculum_restored:
            return
        if distributed and torch.distributed.get_world_size() > 1:
            # Every rank gets rank 0's state.
            state = distributed_utils.broadcast_object(state, 0, distributed_utils.get_global_group())
        if state is not None:
            self.load_state_dict({"mask_curriculum": state})
        self._curriculum_restored = True

    def _pmi_table_state(self) -> Optional[dict]:  # noqa: UP045
        if self.token_scores is None:
            return None
        return {"path": os.path.abspath(self.cfg.pmi_table), "fingerprint": pmi_fingerprint(self.token_scores)}

    def _warn_about_changed_settings(self, path: str, saved: dict) -> bool:
        """One warning line naming each masking setting, PMI table or curriculum that differs from the
        checkpoint's (a checkpoint from before these were stored gives none), and one for an
        imported checkpoint whose masked-LM head is untrained. True if the settings differ."""
        if saved.get(UNTRAINED_LM_HEAD):
            logger.warning(f"{path}: {saved[UNTRAINED_LM_HEAD]}; its masked-LM head is trained from scratch here")
        before = saved.get(MASKING_STATE)
        if not isinstance(before, dict):
            return False
        now = dataclasses.asdict(self.masking)
        changes = []
        for name, value in now.items():
            if name in before and before[name] != value:
                flag = MaskingConfig.__dataclass_fields__[name].metadata["flag"] or name
                changes.append(f"--{flag.replace('_', '-')} {before[name]} (now {value})")
        table_before, table_now = saved.get(PMI_TABLE_STATE), self._pmi_table_state()
        if table_before and table_now and table_before.get("fingerprint") != table_now["fingerprint"]:
            changes.append(
                f"--pmi-table {table_before.get('path')} (scores {table_before.get('fingerprint')}; now "
                f"{table_now['path']}, scores {table_now['fingerprint']})"
            )
        if changes:
            logger.warning(
                f"{path} was trained with " + "; ".join(changes) + ": masks follow this run's settings from here on"
            )
        return bool(changes)

    def state_dict(self):
        state = dict(super().state_dict())
        if self.curriculum is not None:
            state["mask_curriculum"] = self.curriculum.state_dict()
        # What a resumed run compares its own settings with (_warn_about_changed_settings).
        state[MASKING_STATE] = dataclasses.asdict(self.masking)
        table = self._pmi_table_state()
        if table is not None:
            state[PMI_TABLE_STATE] = table
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        for key in (MASKING_STATE, PMI_TABLE_STATE, UNTRAINED_LM_HEAD):  # read on resume, not state to restore
            state_dict.pop(key, None)
        curriculum = state_dict.pop("mask_curriculum", None)
        super().load_state_dict(state_dict)
        if curriculum is None:
            return
        if self.curriculum is None:
            logger.info(f"checkpoint mask curriculum: {curriculum.get('kind')} (not used by this run)")
            return
        try:
            self.curriculum.load_state_dict(curriculum)
        except ValueError as err:
            raise GeneMaskTaskError(f"genemask_mlm: {err}") from None
        self._curriculum_restored = True
        logger.info(f"mask curriculum from the checkpoint: {self.curriculum.describe()}")

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary

    def max_positions(self):
        return self.cfg.tokens_per_sample
