"""Calibrated class probabilities: softmax of the logits divided by the checkpoint's temperature.

A model trained to near-zero loss on few samples is over-confident on new subjects. The trainer fits
one temperature T > 0 on subjects the model never trained on (train.calibration) and stores it in
the checkpoint's meta as {"calibration": {"temperature": T, "how": ...}}; dividing the logits by T
changes no prediction, only how sure it claims to be. A checkpoint without one uses T = 1.
"""

from __future__ import annotations

import math

import numpy as np


def checkpoint_temperature(meta: dict) -> float:
    """The temperature stored in a checkpoint's meta; 1.0 (plain softmax) when it holds none."""
    calibration = meta.get("calibration") or {}
    if not isinstance(calibration, dict):
        raise ValueError(f"checkpoint calibration must be a mapping, not {type(calibration).__name__}")
    temperature = float(calibration.get("temperature", 1.0))
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"checkpoint calibration temperature must be a positive number, not {temperature!r}")
    return temperature


def calibrated_probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / T) over the last axis, as float64 (logits: ... x C)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)
