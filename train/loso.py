"""python -m train.loso: leave-one-subject-out training and evaluation (the paper's Tables 1, 3, 4).

The work is split into groups of folds trained as one batched computation (train.engine); each
finished group is written to the output folder at once, so a run can stop at any point and resume.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console

from epir_core.provenance import versions
from train.config import SCHEDULES, SELECTIONS, TrainConfig
from train.datasource import DATABASES, DataSourceError, load_samples
from train.folds import largest_subjects, loso_folds
from train.runs import RunFolder, RunFolderError
from epir_core.exit_codes import ExitCode, exit_help
from epir_core.paths import data_root
from train.session import (
    describe_device,
    fail,
    parse_overrides,
    pick_device,
    run_folds,
    write_outputs,
)

QUICK_EPOCHS = 20
QUICK_SUBJECTS_PER_DATASET = 2

EXIT_CODES = (ExitCode.OK, ExitCode.FAILED, ExitCode.USAGE, ExitCode.DEVICE, ExitCode.OUTPUT, ExitCode.INTERRUPTED)

HELP = f"""Leave-one-subject-out training and evaluation of EPIR.

Scores are UF1 and UAR (paper Eq. 24-27) on the predictions pooled over all folds, overall and per
source data set. Model selection is honest by default (--select last: fixed epoch budget, last
weights). --select val picks the epoch on a split of the training subjects; --select oracle is
HTNet's published protocol (best epoch on the held-out subject, i.e. test-set selection) and every
output it writes says so.

Quick CPU protocol (--quick): the {QUICK_SUBJECTS_PER_DATASET} largest subjects of each data set as
folds (134 held-out samples), {QUICK_EPOCHS} epochs: about 6 minutes on 2 CPU cores. A full CDE
run (68 folds x 300 epochs) costs 2-5 s per fold-epoch there, 11-28 hours per seed: it is
for a GPU, where all folds train at once.

Examples:

  python -m train.loso --out runs/cde --seeds 0,1,2

  python -m train.loso --out runs/cde-oracle --select oracle

  python -m train.loso --out runs/quick --quick --device cpu

  python -m train.loso --out runs/smic --protocol sde --database smic

  python -m train.loso --out runs/casme2 --protocol sde --database casme2 --prepared prepared/casme2

  python -m train.loso --out runs/cde --seeds 0,1,2 --resume

  python -m train.loso --out runs/aug --select val --calibrate --flip --rotate 10 --mixup 0.2 --ema 0.999 --model-set drop_path=0.1

Every generalisation option (--flip ... --calibrate; dropout and stochastic depth through
--model-set dropout=P drop_path=P) is off by default. --calibrate and --select val hold back
--val-fraction of each fold's training subjects; the held-out subject is never used for either.

Exit codes (6: --out holds another run, or a run and no --resume; 130: finished folds are kept,
rerun with --resume):

\b
{exit_help(*EXIT_CODES)}
"""

app = typer.Typer(add_completion=False, help=HELP, rich_markup_mode=None)


@app.command(help=HELP)
def main(
    out: Path = typer.Option(..., "--out", help="Output folder (created; reused with --resume)."),
    data: Path = typer.Option(data_root(), "--data", help="Data root holding megc2019_composite/ (or that folder); $EPIR_DATA sets the default."),
    prepared: Path | None = typer.Option(None, "--prepared", help="Cache written by python -m train.prepare, instead of the composite."),
    protocol: str = typer.Option("cde", "--protocol", help="cde (composite, 3 classes) or sde (one database)."),
    database: str | None = typer.Option(None, "--database", help=f"With --protocol sde: {' | '.join(DATABASES)}."),
    preset: str = typer.Option("epir", "--preset", help="Model preset (Table 4 rows): vit, +dtsm, +itals, +spt, +dnspt, epir."),
    model_set: list[str] = typer.Option([], "--model-set", help="Override a model config field, KEY=VALUE (repeatable), e.g. center_input=true."),
    epochs: int | None = typer.Option(None, "--epochs", help=f"Epochs per fold [default: 300, or {QUICK_EPOCHS} with --quick]."),
    batch_size: int = typer.Option(256, "--batch-size", help="Batch size per fold."),
    lr: float = typer.Option(5e-5, "--lr", help="Adam learning rate."),
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated seeds; several give mean and std."),
    select: str = typer.Option("last", "--select", help=f"Model selection: {' | '.join(SELECTIONS)}."),
    val_fraction: float = typer.Option(0.15, "--val-fraction", help="With --select val or --calibrate: training subjects held back per data set."),
    shuffle: bool = typer.Option(True, "--shuffle/--no-shuffle", help="Reshuffle batches every epoch (HTNet did not)."),
    flip: bool = typer.Option(False, "--flip", help="Augment: mirror half the training inputs (u -> 1 - u, exact for min-max stretched flows)."),
    rotate: float = typer.Option(0.0, "--rotate", help="Augment: rotate training inputs by up to +-DEG degrees, the (u, v) vectors with the maps."),
    mixup: float = typer.Option(0.0, "--mixup", help="Mixup alpha: Beta(a, a) mixes of training inputs and their targets [0 = off]."),
    label_smoothing: float = typer.Option(0.0, "--label-smoothing", help="Share of each target spread over the classes."),
    weight_decay: float = typer.Option(0.0, "--weight-decay", help="Decoupled weight decay (AdamW) [0 = the paper's Adam]."),
    ema: float = typer.Option(0.0, "--ema", help="EMA decay of the weights; the average is selected, evaluated and saved [0 = off]."),
    class_balance: bool = typer.Option(False, "--class-balance", help="Weight CE by inverse class frequency of each fold's training samples."),
    schedule: str = typer.Option("constant", "--schedule", help=f"Learning rate: {' | '.join(SCHEDULES)} (decay to 0 over the run)."),
    tta_flip: bool = typer.Option(False, "--tta-flip", help="Evaluate on each input and its mirror, averaging the logits."),
    calibrate: bool = typer.Option(False, "--calibrate", help="Fit a temperature per fold on inner-validation subjects (--val-fraction, held back from training)."),
    folds: str | None = typer.Option(None, "--folds", help="Comma-separated held-out subjects, e.g. s03,sub17 (default: all)."),
    quick: bool = typer.Option(False, "--quick", help="Quick CPU protocol (see above)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    group_size: int = typer.Option(0, "--group-size", help="Folds trained at once as one batched computation [0 = auto: 1 on CPU, all on CUDA, halved on out-of-memory]."),
    precision: str = typer.Option("tf32", "--precision", help="fp32 | tf32 | bf16 (CUDA only: TF32 matmuls, or bf16 autocast)."),
    checkpoints: bool = typer.Option(True, "--checkpoints/--no-checkpoints", help="Save each fold's weights (fp16, 14 MB a fold)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out, skipping finished folds."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    console = Console(stderr=True)
    torch_device = pick_device(device, console)
    try:
        samples = load_samples(protocol, database, data, prepared)
        cfg = TrainConfig(
            preset=preset,
            epochs=epochs or (QUICK_EPOCHS if quick else 300),
            batch_size=batch_size,
            lr=lr,
            shuffle=shuffle,
            selection=select,
            val_fraction=val_fraction,
            precision=precision,
            model=parse_overrides(model_set),
            flip=flip,
            rotate=rotate,
            mixup=mixup,
            label_smoothing=label_smoothing,
            weight_decay=weight_decay,
            ema=ema,
            class_balance=class_balance,
            schedule=schedule,
            tta_flip=tta_flip,
            calibrate=calibrate,
        )
        seed_list = _int_list(seeds, "--seeds")
        subjects = _subjects(samples, folds, quick)
    except DataSourceError as exc:
        fail(console, str(exc), ExitCode.USAGE)
    except ValueError as exc:
        fail(console, f"bad option: {exc}", ExitCode.USAGE)

    spec = {
        "protocol": protocol,
        "database": database,
        "source": "prepared" if prepared else "composite",
        "samples": len(samples),
        "class_names": list(samples.class_names),
        "recipe": samples.recipe.to_dict(),
        "train": cfg.to_dict(),
    }
    folder = RunFolder(out)
    try:
        folder.start(spec, resume)
    except RunFolderError as exc:
        fail(console, str(exc), ExitCode.OUTPUT)
    except OSError as exc:
        fail(console, f"--out: cannot use {out}: {exc}", ExitCode.OUTPUT)

    plan = {s: loso_folds(samples.subjects, samples.datasets, s, subjects, cfg.val_fraction if cfg.needs_val else 0.0) for s in seed_list}
    facts = {
        "run": {"data": str(prepared or data), "device": describe_device(torch_device), "seeds": seed_list, "subjects": subjects, "quick": quick},
        "versions": versions(),  # taken once, before training: the code that ran, not the code at report time
    }
    started = time.perf_counter()
    try:
        run_folds(
            folder, samples, cfg, plan, torch_device, group_size, checkpoints, console,
            after_group=lambda: write_outputs(folder, samples, spec, plan, facts, console, quiet=True),
        )
        report = write_outputs(folder, samples, spec, plan, facts, console, quiet=False)
    except KeyboardInterrupt:
        write_outputs(folder, samples, spec, plan, facts, console, quiet=True)
        fail(console, f"interrupted: finished folds are kept in {out}; rerun the command with --resume", ExitCode.INTERRUPTED)
    except Exception as exc:  # one line instead of a traceback; finished folds stay on disk
        fail(console, f"training failed: {type(exc).__name__}: {exc}", ExitCode.FAILED)
    if as_json:
        print(json.dumps(_summary(report, out, time.perf_counter() - started)))


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{option} takes comma-separated integers, not {text!r}") from None
    if not values:
        raise ValueError(f"{option} is empty")
    return values


def _subjects(samples, folds: str | None, quick: bool) -> list[str]:
    if folds and quick:
        raise ValueError("use either --folds or --quick")
    if quick:
        return largest_subjects(samples.subjects, samples.datasets, QUICK_SUBJECTS_PER_DATASET)
    if folds:
        wanted = list(dict.fromkeys(s.strip() for s in folds.split(",") if s.strip()))  # a repeat is one fold
        known = set(samples.subjects.tolist())
        unknown = [s for s in wanted if s not in known]
        if unknown:
            raise ValueError(f"--folds: unknown subjects {', '.join(unknown)}")
        return wanted
    return sorted(set(samples.subjects.tolist()))


def _summary(report: dict, out: Path, seconds: float) -> dict:
    return {
        "out": str(out),
        "protocol": report["protocol"],
        "database": report["database"],
        "selection": report["selection"],
        "oracle": report["oracle"],
        "overall": report["overall"],
        "per_dataset": report["per_dataset"],
        "complete": report["complete"],
        "folds_done": report["folds_done"],
        "folds_total": report["folds_total"],
        "wall_seconds": round(seconds, 1),
        "report": str(out / "report.json"),
    }


if __name__ == "__main__":
    app()
