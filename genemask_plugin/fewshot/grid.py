"""The few-shot grid: every (checkpoint, dataset, shots, seed) cell, prepared, trained and scored.

:mod:`.grid_plan` says what the cells are and where their files go, :mod:`.cell_runner` runs one
(fine-tuning or probing), and :mod:`.cell_record` is the ``metrics.json`` a finished cell leaves.
A cell is finished when its ``metrics.json`` exists with the same settings, so a rerun skips it;
a crashed cell leaves ``error.txt`` and the grid goes on. At the end the summary covers every
finished cell under ``RESULTS`` (grids run one checkpoint at a time combine)::

    summary.csv  summary.md  summary.png                mean ± std over seeds (:mod:`.grid_summary`)
"""

from __future__ import annotations

import shutil
import traceback
from dataclasses import dataclass, field

from tqdm import tqdm

from genemask_preprocess.atomic_output import atomic_file
from genemask_preprocess.command_line import is_out_of_memory
from genemask_preprocess.errors import OutputError
from genemask_preprocess.formats.fairseq_dictionary import load_kmer_vocabulary

from .cell_runner import ProbeCache, ResolvedCheckpoint, resolve_checkpoint, run_cell
from .grid_plan import Cell, GridConfig, cell_dir, is_finished, plan_cells
from .grid_summary import metric_value, write_summary
from .gue import gue_split_files
from .metrics import METRIC_TITLES, METRICS
from .prepare import read_checked_splits


@dataclass
class GridReport:
    finished: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    summary_rows: list[dict] = field(default_factory=list)


def run_grid(config: GridConfig, progress: bool = True) -> GridReport:
    """Run every unfinished cell, then write the summary (table, CSV, plot)."""
    cells = plan_cells(config)
    resolved = {spec.label: resolve_checkpoint(config, spec) for spec in config.checkpoints}
    check_cell_inputs(cells, resolved)
    created_out = not config.out.exists()
    config.out.mkdir(parents=True, exist_ok=True)
    report = GridReport()
    try:
        return _run_cells(config, cells, resolved, report, progress)
    except BaseException:
        if created_out and not report.finished:
            shutil.rmtree(config.out, ignore_errors=True)
        raise


def check_cell_inputs(cells: list[Cell], resolved: dict[str, ResolvedCheckpoint]) -> None:
    """Refuse bad few-shot files before any cell runs (a bad file would fail each of its cells)."""
    seen = set()
    for cell in cells:
        k = load_kmer_vocabulary(resolved[cell.checkpoint.label].dictionary).kmer_text_length
        key = (cell.files.train, cell.files.test, k)
        if key not in seen:
            seen.add(key)
            if cell.files.gue:
                splits = gue_split_files(cell.files.train, cell.files.dev)
            else:
                splits = {"train": cell.files.train, "test": cell.files.test}
            read_checked_splits(splits, k)


def _discard_cell(config: GridConfig, cell: Cell) -> None:
    """Remove an unfinished cell's folder, and the group folders it leaves empty."""
    directory = cell_dir(config, cell)
    shutil.rmtree(directory, ignore_errors=True)
    for parent in directory.parents:
        if parent == config.out or config.out not in parent.parents:
            break
        try:
            parent.rmdir()
        except OSError:
            break


def _run_cells(config: GridConfig, cells: list[Cell], resolved: dict[str, ResolvedCheckpoint],
               report: GridReport, progress: bool) -> GridReport:
    cache = ProbeCache()
    tqdm.monitor_interval = 0  # no monitor thread: under a memory limit it cannot start, and warns
    bar = tqdm(cells, unit="cell", disable=not progress, dynamic_ncols=True)
    for cell in bar:
        bar.set_postfix_str(cell.name())
        checkpoint = resolved[cell.checkpoint.label]
        if is_finished(config, cell, checkpoint.dictionary):
            report.skipped += 1
            continue
        try:
            record = run_cell(config, cell, checkpoint, cache)
        except (OSError, OutputError):  # a full disk or an unwritable folder stops the grid
            _discard_cell(config, cell)
            raise
        except Exception as err:  # one bad cell must not stop the grid
            if is_out_of_memory(err):  # but a memory limit would fail every cell alike
                _discard_cell(config, cell)
                raise
            directory = cell_dir(config, cell)
            with atomic_file(directory / "error.txt") as handle:
                handle.write(traceback.format_exc())
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            report.failed.append((cell.name(), message))
            tqdm.write(f"cell failed: {cell.name()}: {message} (details: {directory / 'error.txt'})")
            continue
        except BaseException:  # a signal: the unfinished cell goes, finished ones stay
            _discard_cell(config, cell)
            raise
        report.finished += 1
        scores = ", ".join(f"{METRIC_TITLES[m]} {metric_value(record.metrics[m]):.3f}" for m in METRICS)
        tqdm.write(f"{cell.name()}: {scores}")
    bar.close()
    order = [spec.label for spec in config.checkpoints]
    report.summary_rows = write_summary(config.out, order)
    return report
