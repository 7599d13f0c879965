"""python -m train.fit: train the shipped default model on ALL composite samples.

There is no held-out subject here (the LOSO runs measure how well the recipe generalises); this is
the model the live app loads when no --model is given: default preset, default recipe, fixed epoch
budget, last weights, stored in half precision.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import typer
from rich.console import Console

from epir_core.checkpoint import DEFAULT_MODEL_PATH, save_checkpoint
from epir_core.provenance import versions
from train.config import TrainConfig
from train.datasource import DataSourceError, load_samples
from train.engine import fold_model, train_group
from train.folds import Fold
from epir_core.exit_codes import ExitCode, exit_help
from epir_core.paths import data_root
from train.results import RunError, load_report
from train.session import (
    describe_device,
    fail,
    make_progress,
    parse_overrides,
    pick_device,
    progress_callback,
)

HELP = f"""Train the default model on all 442 composite samples and write it as a checkpoint.

With --recipe-from RUN the fit uses the training recipe of a finished LOSO run (augmentation,
regularisation, ...; its median inner-validation epoch if it selected epochs) and ships the run's
calibration temperature (geometric mean of its per-fold temperatures) in the checkpoint's meta.

Same recipe as a LOSO fold (Adam, lr 5e-5, batch 256, 300 epochs, CE + contrastive loss, last
weights) on every sample; the weights are stored in fp16 (restored to fp32 on load). The same seed
on the same device gives the same weights (GPU scatter-add may differ in the last bits).

Examples:

  python -m train.fit    (writes epir_core/weights/epir_cde.pt)

  python -m train.fit --out /tmp/model.pt --epochs 5 --device cpu

  python -m train.fit --recipe-from results/cde-honest

Exit codes (130: nothing is written):

\b
{exit_help(ExitCode.OK, ExitCode.FAILED, ExitCode.USAGE, ExitCode.DEVICE, ExitCode.INTERRUPTED)}
"""

app = typer.Typer(add_completion=False, help=HELP, rich_markup_mode=None)


@app.command(help=HELP)
def main(
    out: Path = typer.Option(DEFAULT_MODEL_PATH, "--out", help="Checkpoint to write."),
    data: Path = typer.Option(data_root(), "--data", help="Data root holding megc2019_composite/ (or that folder); $EPIR_DATA sets the default."),
    recipe_from: Path | None = typer.Option(None, "--recipe-from", help="LOSO run folder whose recipe and temperature to use (see above)."),
    preset: str | None = typer.Option(None, "--preset", help="Model preset [default: epir]."),
    model_set: list[str] = typer.Option([], "--model-set", help="Override a model config field, KEY=VALUE (repeatable)."),
    epochs: int | None = typer.Option(None, "--epochs", help="Epochs [default: 300]."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Batch size [default: 256]."),
    lr: float | None = typer.Option(None, "--lr", help="Adam learning rate [default: 5e-5]."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial weights and batch order."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    precision: str = typer.Option("tf32", "--precision", help="fp32 | tf32 | bf16 (CUDA only: TF32 matmuls, or bf16 autocast)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    console = Console(stderr=True)
    torch_device = pick_device(device, console)
    try:
        samples = load_samples("cde", None, data, None)
        if recipe_from is not None:
            if preset or model_set or epochs or batch_size or lr:
                raise ValueError("--recipe-from sets the recipe: drop --preset, --model-set, --epochs, --batch-size and --lr")
            cfg, calibration = recipe_of_run(recipe_from, precision)
        else:
            default = TrainConfig()
            cfg = TrainConfig(
                preset=preset or default.preset, epochs=epochs or default.epochs, batch_size=batch_size or default.batch_size,
                lr=lr or default.lr, precision=precision, model=parse_overrides(model_set),
            )
            calibration = {"temperature": 1.0, "how": "none: T = 1 (no --recipe-from run to take it from)"}
    except (DataSourceError, RunError) as exc:
        fail(console, str(exc), ExitCode.USAGE)
    except ValueError as exc:
        fail(console, f"bad option: {exc}", ExitCode.USAGE)

    everything = Fold("all", train=np.arange(len(samples)), val=np.array([], np.int64), test=np.array([], np.int64))
    started = time.perf_counter()
    try:
        with make_progress(console) as progress:
            task = progress.add_task("fit", total=cfg.epochs, loss="-")
            label = f"fit on {len(samples)} samples"
            (outcome,) = train_group(
                [everything], samples.inputs, samples.labels, len(samples.class_names), cfg, seed, torch_device,
                on_epoch=progress_callback(progress, task, label, 1, cfg.epochs),
            )
        seconds = time.perf_counter() - started
        meta = {
            "trained_by": "train.fit",
            "command": "python -m train.fit " + " ".join(sys.argv[1:]),
            "data": f"megc2019_composite: all {len(samples)} samples, {len(set(samples.subjects.tolist()))} subjects",
            "train": cfg.to_dict(),
            "recipe_from": str(recipe_from) if recipe_from else None,
            "calibration": calibration,
            "seed": seed,
            "final_loss": outcome.final_loss,
            "seconds": round(seconds, 1),
            "device": describe_device(torch_device),
            "versions": versions(),
        }
        model = fold_model(cfg, len(samples.class_names), outcome.state_dict)
        save_checkpoint(out, model, samples.class_names, samples.recipe, meta, half=True)
    except KeyboardInterrupt:
        fail(console, "interrupted: no checkpoint written", ExitCode.INTERRUPTED)
    except Exception as exc:  # one line instead of a traceback
        fail(console, f"training failed: {type(exc).__name__}: {exc}", ExitCode.FAILED)
    console.print(f"wrote {out} (final training loss {outcome.final_loss:.4f}, {seconds:.0f} s)")
    if as_json:
        print(json.dumps({"out": str(out), "final_loss": outcome.final_loss, "seconds": round(seconds, 1), "epochs": cfg.epochs}))


def recipe_of_run(run: Path, precision: str) -> tuple[TrainConfig, dict]:
    """The recipe of a finished LOSO run for a fit on every sample, and the temperature to ship.

    No subject is held out in the fit, so nothing can select an epoch or fit a temperature there:
    a run that selected epochs on inner validation gives its median selected epoch as the fixed
    budget, and the temperature is the geometric mean of the run's per-fold temperatures (each
    fitted on inner-validation subjects, so on subjects its model never trained on)."""
    report = load_report(run)
    train = report["config"].get("train", {})
    if "preset" not in train:
        raise RunError(f"--recipe-from {run}: a per-fold selection has no single recipe; fit the run `python -m train.results pick` names")
    if not report["complete"]:
        raise RunError(f"--recipe-from {run}: the run is not complete ({report['folds_done']}/{report['folds_total']} folds)")
    epochs = train["epochs"]
    if train["selection"] == "val":
        epochs = int(np.median([f["selected_epoch"] for f in report["per_fold"]]))
    elif train["selection"] == "oracle":
        raise RunError(f"--recipe-from {run}: an oracle run chose its epochs on test subjects")
    cfg = TrainConfig.from_dict(train | {"selection": "last", "calibrate": False, "epochs": epochs, "precision": precision})
    cal = report.get("calibration") or {}
    if cal.get("how", "").startswith("one temperature per fold"):
        calibration = {
            "temperature": cal["temperature"]["geometric_mean"],
            "how": f"geometric mean of the per-fold temperatures of LOSO run {run} (ECE {cal['ece_raw']:.3f} raw, "
            f"{cal['ece_calibrated']:.3f} calibrated on its held-out predictions), each fitted on that fold's inner-validation subjects",
        }
    else:
        calibration = {"temperature": 1.0, "how": f"none: LOSO run {run} fitted no temperature"}
    return cfg, calibration


if __name__ == "__main__":
    app()
