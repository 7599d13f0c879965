"""What the training CLIs share: device choice, failure lines, run facts, and the LOSO work loop (groups of folds with live progress, saved as each group finishes)."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from epir_core.checkpoint import save_checkpoint
from epir_core.errors import DeviceUnavailable
from epir_core.exit_codes import ExitCode
from epir_core.files import write_text_atomic
from epir_core.provenance import git_commit, versions
from epir_core.runtime import resolve_device
from train.config import TrainConfig
from train.data.sampleset import SampleSet
from train.engine import fold_model, train_group
from train.folds import Fold, group_folds
from train.report import (
    build_report,
    draw_confusion,
    draw_reliability,
    fold_record,
    print_table,
    write_predictions,
)
from train.runs import RunFolder

FOLD_CALIBRATION = "NLL-fitted on this fold's inner-validation subjects (never the held-out subject)"


def fail(console: Console, message: str, code: ExitCode) -> NoReturn:
    console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(int(code))


def pick_device(name: str, console: Console) -> torch.device:
    """The --device to train on; a bad name exits 2, cuda without a GPU exits 5."""
    try:
        return torch.device(resolve_device(name))
    except ValueError as exc:
        fail(console, str(exc), ExitCode.USAGE)
    except DeviceUnavailable as exc:
        fail(console, str(exc), ExitCode.DEVICE)


def parse_overrides(items: list[str]) -> dict:
    """["dim=64", "center_input=true", "merge_mode=pair_mean"] -> {"dim": 64, "center_input": True, ...}:
    JSON values where they parse, strings otherwise."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--model-set takes KEY=VALUE, not {item!r}")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def run_folds(
    folder: RunFolder,
    samples: SampleSet,
    cfg: TrainConfig,
    plan: dict[int, list[Fold]],  # seed -> folds
    device: torch.device,
    group_size: int,
    checkpoints: bool,
    console: Console,
    after_group: Callable[[], object] = lambda: None,
) -> None:
    """Train every unfinished fold, a group at a time; each group is on disk (and `after_group` has
    refreshed the reports) before the next starts."""
    todo = {s: [f for f in folds if not folder.is_done(s, f.subject)] for s, folds in plan.items()}
    commit = git_commit()[0]  # the code that trains these folds (a resumed run may mix commits)
    # Batching folds pays on a GPU (one launch serves G folds); on the CPU it measured no faster,
    # and single folds make the finest resume unit.
    size = group_size or (1 if device.type == "cpu" else max(map(len, todo.values()), default=1) or 1)
    with make_progress(console) as progress:
        task = progress.add_task("LOSO", total=sum(map(len, todo.values())) * cfg.epochs, loss="-")
        for seed, remaining in todo.items():
            while remaining:
                group = group_folds(remaining, size, cfg.batch_size)[0]
                done_before = progress.tasks[0].completed
                try:
                    started = time.perf_counter()
                    outcomes = train_group(
                        group, samples.inputs, samples.labels, len(samples.class_names), cfg, seed, device,
                        on_epoch=progress_callback(progress, task, f"seed {seed} · {_describe(group)}", len(group), cfg.epochs),
                    )
                    seconds = time.perf_counter() - started
                except torch.cuda.OutOfMemoryError:
                    if len(group) == 1:
                        raise
                    outcomes = None
                if outcomes is None:  # outside the except block, so the failed step's tensors are freed
                    size = len(group) // 2
                    torch.cuda.empty_cache()
                    progress.update(task, completed=done_before)
                    console.print(f"out of GPU memory with {len(group)} folds at once: retrying with {size}")
                    continue
                info = {"id": group[0].subject, "folds": len(group), "epochs": cfg.epochs, "seconds": round(seconds, 2),
                        "device": describe_device(device), "git_commit": commit}
                _save_group(folder, samples, cfg, seed, outcomes, info, checkpoints)
                after_group()
                finished = {f.subject for f in group}
                remaining = [f for f in remaining if f.subject not in finished]


def make_progress(console: Console) -> Progress:
    """Live display on stderr: what trains, bar of fold-epochs, mean training loss, elapsed, ETA."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )


def progress_callback(progress: Progress, task, label: str, folds: int, epochs: int):
    """An engine epoch callback that advances `task` by one epoch of `folds` folds."""

    def on_epoch(epoch: int, losses: np.ndarray) -> None:
        progress.update(task, advance=folds, loss=f"{losses.mean():.3f}", description=f"{label} · epoch {epoch}/{epochs}")

    return on_epoch


def _describe(group: list[Fold]) -> str:
    return f"{len(group)} fold{'s' * (len(group) > 1)} ({group[0].subject}…{group[-1].subject})"


def _save_group(folder: RunFolder, samples: SampleSet, cfg: TrainConfig, seed: int, outcomes, info: dict, checkpoints: bool) -> None:
    for o in outcomes:
        if checkpoints:
            meta = {
                "trained_by": "train.loso",
                "held_out_subject": o.fold.subject,
                "seed": seed,
                "selection": cfg.selection,
                "selected_epoch": o.selected_epoch,
                "train": cfg.to_dict(),
                "calibration": {"temperature": o.temperature, "how": FOLD_CALIBRATION if cfg.calibrate else "none: T = 1"},
            }
            model = fold_model(cfg, len(samples.class_names), o.state_dict)
            save_checkpoint(folder.checkpoint_path(seed, o.fold.subject), model, samples.class_names, samples.recipe, meta, half=True)
        record = fold_record(seed, o, samples.sample_ids, samples.datasets, samples.labels, info)
        folder.save_fold(seed, o.fold.subject, record)  # last: marks the fold finished


def write_outputs(
    folder: RunFolder, samples: SampleSet, spec: dict, plan: dict[int, list[Fold]], facts: dict, console: Console, quiet: bool
) -> dict | None:
    """The run's report files from its finished folds; None when none is. facts: {"run": ..., "versions": ...}."""
    subjects = [f.subject for f in next(iter(plan.values()))]
    records = folder.fold_records(list(plan), subjects)
    if not records:
        return None
    total = sum(map(len, plan.values()))
    return write_report_files(folder.path, records, samples.class_names, spec, total, facts, console, quiet)


def write_report_files(
    path: Path, records: list[dict], class_names: tuple[str, ...], spec: dict, folds_total: int, extra: dict,
    console: Console, quiet: bool,
) -> dict:
    """report.json, predictions.csv, confusion.png and reliability.png from fold records. extra:
    facts for report.json, with "versions" (epir_core.provenance.versions) taken when the work began."""
    report = build_report(records, class_names, spec, folds_total, extra)
    write_text_atomic(path / "report.json", json.dumps(report, indent=1))
    write_predictions(path / "predictions.csv", records, class_names, report["selection"])
    title = f"{spec['protocol']} {spec.get('database') or ''} selection={report['selection']}" + (" ORACLE (test-set selection)" if report["oracle"] else "")
    draw_confusion(path / "confusion.png", np.array(report["confusion"]), class_names, title)
    draw_reliability(path / "reliability.png", records, title)
    if not quiet:
        print_table(report, console)
    return report
