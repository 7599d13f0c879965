"""Recognition metrics of the paper (Eq. 24-27): UF1 and UAR over pooled predictions.

Both are unweighted means over classes, so that the rare classes (surprise, positive) count as much
as the frequent negative class:

    UF1 = 1/C * sum_c 2 TP_c / (2 TP_c + FP_c + FN_c)          (Eq. 24-25)
    UAR = 1/C * sum_c TP_c / N_c,   N_c = samples of class c     (Eq. 26-27)

A class that has no ground-truth sample in the pool (common for one LOSO fold, possible for a
sub-database) has an undefined recall (0/0), and its F1 would only measure stray predictions. Such
a class is left out of BOTH means, so UF1 and UAR always average over the same classes, the classes
present in `y_true` (HTNet's `recognition_evaluation` also skips absent classes). Predictions *of*
an absent class are still errors: each one is a false negative of the sample's true class.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """C x C int64 counts, rows = true class, columns = predicted class."""
    y_true = _class_ids(y_true, num_classes, "y_true")
    y_pred = _class_ids(y_pred, num_classes, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.shape} vs {y_pred.shape}")
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def per_class_f1(cm: np.ndarray) -> np.ndarray:
    """C float F1 scores from a confusion matrix; NaN for classes absent from the ground truth."""
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    present = cm.sum(axis=1) > 0  # 2TP + FN > 0, so the denominator is never 0 here
    return np.where(present, 2 * tp / np.maximum(2 * tp + fp + fn, 1), np.nan)


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    """C float recalls from a confusion matrix; NaN for classes absent from the ground truth."""
    support = cm.sum(axis=1)
    return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def uf1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Unweighted F1 (Eq. 24-25) over the classes present in `y_true`."""
    return _present_mean(per_class_f1(confusion_matrix(y_true, y_pred, num_classes)))


def uar(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Unweighted average recall (Eq. 26-27) over the classes present in `y_true`."""
    return _present_mean(per_class_recall(confusion_matrix(y_true, y_pred, num_classes)))


def _present_mean(scores: np.ndarray) -> float:
    if np.isnan(scores).all():
        raise ValueError("no samples: UF1/UAR are undefined for an empty set of predictions")
    return float(np.nanmean(scores))


def _class_ids(y: np.ndarray, num_classes: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or (y.size and not np.issubdtype(y.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-D array of integer class ids")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{name} holds class ids outside 0..{num_classes - 1}")
    return y
