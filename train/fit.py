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
from train.session import (
    describe_device,
    fail,
    make_progress,
    parse_overrides,
    pick_device,
    progress_callback,
)

HELP = f"""Train the default model on all 442 composite samples and write it as a checkpoint.

Same recipe as a LOSO fold (Adam, lr 5e-5, batch 256, 300 epochs, CE + contrastive loss, last
weights) on every sample; the weights are stored in fp16 (restored to fp32 on load). The same seed
on the same device gives the same weights (GPU scatter-add may differ in the last bits).

Examples:

  python -m train.fit    (writes epir_core/weights/epir_cde.pt)

  python -m train.fit --out /tmp/model.pt --epochs 5 --device cpu

Exit codes (130: nothing is written):

\b
{exit_help(ExitCode.OK, ExitCode.FAILED, ExitCode.USAGE, ExitCode.DEVICE, ExitCode.INTERRUPTED)}
"""

app = typer.Typer(add_completion=False, help=HELP, rich_markup_mode=None)


@app.command(help=HELP)
def main(
    out: Path = typer.Option(DEFAULT_MODEL_PATH, "--out", help="Checkpoint to write."),
    data: Path = typer.Option(data_root(), "--data", help="Data root holding megc2019_composite/ (or that folder); $EPIR_DATA sets the default."),
    preset: str = typer.Option("epir", "--preset", help="Model preset."),
    model_set: list[str] = typer.Option([], "--model-set", help="Override a model config field, KEY=VALUE (repeatable)."),
    epochs: int = typer.Option(300, "--epochs", help="Epochs."),
    batch_size: int = typer.Option(256, "--batch-size", help="Batch size."),
    lr: float = typer.Option(5e-5, "--lr", help="Adam learning rate."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial weights and batch order."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    precision: str = typer.Option("tf32", "--precision", help="fp32 | tf32 | bf16 (CUDA only: TF32 matmuls, or bf16 autocast)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    console = Console(stderr=True)
    torch_device = pick_device(device, console)
    try:
        samples = load_samples("cde", None, data, None)
        cfg = TrainConfig(
            preset=preset, epochs=epochs, batch_size=batch_size, lr=lr, precision=precision, model=parse_overrides(model_set)
        )
    except DataSourceError as exc:
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


if __name__ == "__main__":
    app()
