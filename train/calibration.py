"""Temperature scaling fitted on held-back training subjects, and how calibrated predictions are.

Applying a temperature is the core's (epir_core.calibration); fitting one and measuring calibration
is the trainer's. The fit never sees the held-out subject: each LOSO fold fits on its own
inner-validation subjects (train.folds, val_fraction).
"""

from __future__ import annotations

import math

import numpy as np

ECE_BINS = 15  # Guo et al. 2017, the usual choice
_LOG_T_RANGE = (math.log(0.05), math.log(50.0))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / T)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, iterations: int = 80) -> float:
    """The T in [0.05, 50] minimising the NLL of `labels` (N) under softmax(logits / T) (N x C).

    The NLL is convex in 1/T, hence unimodal in log T, so a golden-section search finds the optimum
    (to ~1e-12 in log T after 80 steps) without derivatives or scipy."""
    if len(labels) == 0:
        raise ValueError("fitting a temperature needs at least one validation sample")
    lo, hi = _LOG_T_RANGE
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(logits, labels, math.exp(a)), nll(logits, labels, math.exp(b))
    for _ in range(iterations):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(logits, labels, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(logits, labels, math.exp(b))
    return math.exp((lo + hi) / 2)


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Predictions grouped by confidence (the top probability) into equal-width bins (lo, hi]: per
    bin its range, count, mean confidence and accuracy (None for an empty bin)."""
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(labels)
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        member = index == b
        n = int(member.sum())
        out.append({
            "lo": b / bins,
            "hi": (b + 1) / bins,
            "count": n,
            "confidence": float(confidence[member].mean()) if n else None,
            "accuracy": float(correct[member].mean()) if n else None,
        })
    return out


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE = sum over bins of (bin share of samples) x |accuracy - mean confidence|."""
    total = len(labels)
    if total == 0:
        raise ValueError("ECE is undefined for an empty set of predictions")
    return float(sum(b["count"] / total * abs(b["accuracy"] - b["confidence"]) for b in reliability_bins(probs, labels, bins) if b["count"]))


def fold_calibration(val_logits: np.ndarray, val_labels: np.ndarray) -> dict:
    """The temperature of one fold, fitted on its inner-validation subjects, with the validation NLL
    before and after (the evidence that the fit helped on data it was fitted on)."""
    temperature = fit_temperature(val_logits, val_labels)
    return {
        "temperature": temperature,
        "val_nll_raw": nll(val_logits, val_labels, 1.0),
        "val_nll_calibrated": nll(val_logits, val_labels, temperature),
    }
