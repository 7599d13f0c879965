"""EPIR core: the model, its loss, checkpoints, export and the input preprocessing shared by the
trainer, the live app and the benchmarks."""

from epir_core.config import PRESETS, EPIRConfig
from epir_core.model import build_model

__all__ = ["PRESETS", "EPIRConfig", "build_model"]
