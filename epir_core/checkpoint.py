"""The one checkpoint format of the project: weights, model config, class names and input recipe.

A checkpoint is a plain dict of tensors, strings, numbers, lists and dicts, saved with torch.save and
read back with torch.load(weights_only=True), so loading never executes pickled code.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import epir_core
from epir_core.calibration import checkpoint_temperature
from epir_core.config import EPIRConfig
from epir_core.errors import CheckpointError
from epir_core.files import atomic_path
from epir_core.model import EPIR, MirrorAveraged
from epir_core.preprocess.recipe import InputRecipe

FORMAT = "epir-checkpoint"
VERSION = 1
DEFAULT_MODEL_PATH = Path(epir_core.__file__).parent / "weights" / "epir_cde.pt"


@dataclass(frozen=True)
class Checkpoint:
    model: EPIR  # eval mode, fp32
    config: EPIRConfig
    class_names: tuple[str, ...]
    recipe: InputRecipe
    meta: dict

    @property
    def temperature(self) -> float:
        """The calibration temperature for epir_core.calibration.calibrated_probabilities; 1.0 for a
        checkpoint saved without one."""
        return checkpoint_temperature(self.meta)

    @property
    def mirror_averaged(self) -> bool:
        """Trained to predict from the mean over each input and its mirror (train's --tta-flip); its
        calibration temperature was fitted on those means."""
        return bool(self.meta.get("train", {}).get("tta_flip", False))

    @property
    def predictor(self) -> nn.Module:
        """The module to run for this checkpoint's logits: the model, mirror-averaged when it was
        trained so (then each input costs two of the model's forward passes)."""
        return MirrorAveraged(self.model) if self.mirror_averaged else self.model


def save_checkpoint(
    path: str | os.PathLike,
    model: EPIR,
    class_names: Sequence[str],
    recipe: InputRecipe,
    meta: dict | None = None,
    half: bool = False,
) -> Path:
    """Write the checkpoint atomically (a crash leaves the old file intact). half=True stores floating
    weights as fp16, halving the file; they are restored to fp32 on load."""
    path = Path(path)
    class_names = [str(c) for c in class_names]
    if len(class_names) != model.config.num_classes:
        raise ValueError(f"{len(class_names)} class names for a {model.config.num_classes}-class model")
    try:
        # The JSON round trip turns str subclasses (torch.__version__ is one) into plain types that
        # a weights_only load accepts, and keeps meta printable by the CLIs.
        meta = json.loads(json.dumps(meta or {}))
    except TypeError as exc:
        raise ValueError(f"checkpoint meta must be JSON-serialisable: {exc}") from exc
    state = {
        k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
        for k, v in model.state_dict().items()
    }
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config.to_dict(),
        "class_names": class_names,
        "recipe": recipe.to_dict(),
        "meta": meta,
        "state_dict": state,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint; every failure is a CheckpointError with a one-line message."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # the safe loader met bytes or objects it will not run
        raise CheckpointError(f"cannot read {path}: corrupt, or holds objects a safe load refuses") from exc
    except Exception as exc:  # noqa: BLE001 - on arbitrary bytes the unpickler can raise nearly anything
        raise CheckpointError(f"cannot read {path}: corrupt or truncated ({type(exc).__name__})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an EPIR checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {payload.get('version')!r}; this code reads version {VERSION}"
        )
    try:
        config = EPIRConfig.from_dict(payload["config"])
        recipe = InputRecipe.from_dict(payload["recipe"])
        class_names = tuple(payload["class_names"])
        model = EPIR(config)
        state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is a damaged EPIR checkpoint: {_first_line(exc)}") from exc
    if len(class_names) != config.num_classes:
        raise CheckpointError(f"{path} names {len(class_names)} classes for a {config.num_classes}-class model")
    meta = dict(payload.get("meta", {}))
    try:
        checkpoint_temperature(meta)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: {_first_line(exc)}") from exc
    return Checkpoint(model.to(device).eval(), config, class_names, recipe, meta)
