"""Leave-one-subject-out folds, the optional validation split, and grouping folds for batched training."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fold:
    subject: str  # the held-out subject ("" for a fit on all samples)
    train: np.ndarray  # sample indices the weights are fitted on
    val: np.ndarray  # indices of training subjects held back for model selection (may be empty)
    test: np.ndarray  # the held-out subject's sample indices (empty for a fit on all samples)

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(len(self.train) / batch_size)


def fold_seed(seed: int, subject: str) -> int:
    """A per-fold seed that depends only on the run seed and the subject, never on fold grouping,
    so a fold trains identically alone or inside any group."""
    return (seed * 1_000_003 + zlib.crc32(subject.encode())) % (2**31)


def loso_folds(
    subjects: np.ndarray,
    datasets: np.ndarray,
    seed: int,
    only: list[str] | None = None,
    val_fraction: float = 0.0,
) -> list[Fold]:
    """One fold per subject (in sorted order), or per subject in `only`.

    With val_fraction > 0 each fold holds back that fraction of its training subjects, drawn per
    source data set (so every data set stays represented), as a validation set for model selection.
    """
    subjects = np.asarray(subjects)
    all_subjects = sorted(set(subjects.tolist()))
    wanted = all_subjects if only is None else only
    unknown = [s for s in wanted if s not in set(all_subjects)]
    if unknown:
        raise ValueError(f"unknown subjects {unknown}; known: {', '.join(all_subjects)}")
    folds = []
    for subject in wanted:
        held_out = subjects == subject
        train = ~held_out
        val = np.zeros_like(held_out)
        if val_fraction > 0:
            val = np.isin(subjects, _validation_subjects(subjects[train], datasets[train], val_fraction, fold_seed(seed, subject)))
            train &= ~val
        folds.append(Fold(subject, np.flatnonzero(train), np.flatnonzero(val), np.flatnonzero(held_out)))
    return folds


def _validation_subjects(subjects: np.ndarray, datasets: np.ndarray, fraction: float, seed: int) -> list[str]:
    """round(fraction x subjects) subjects per data set (at least one), at random."""
    rng = np.random.default_rng(seed)
    chosen = []
    for ds in sorted(set(datasets.tolist())):
        pool = sorted(set(subjects[datasets == ds].tolist()))
        k = min(len(pool) - 1, max(1, round(fraction * len(pool))))  # keep at least one for training
        chosen += rng.choice(pool, size=k, replace=False).tolist() if k > 0 else []
    return chosen


def group_folds(folds: list[Fold], group_size: int, batch_size: int) -> list[list[Fold]]:
    """Chunks of at most `group_size` folds that share the number of optimiser steps per epoch.

    One Adam over stacked per-fold parameters equals independent Adams only if every fold takes a
    step at every step; folds whose training sets split into a different number of batches are
    therefore never grouped together (with the composite and batch 256 all folds take 2 steps).
    """
    by_steps: dict[int, list[Fold]] = {}
    for fold in folds:
        by_steps.setdefault(fold.steps_per_epoch(batch_size), []).append(fold)
    groups = []
    for members in by_steps.values():
        groups += [members[i : i + group_size] for i in range(0, len(members), group_size)]
    return groups


def largest_subjects(subjects: np.ndarray, datasets: np.ndarray, per_dataset: int) -> list[str]:
    """The `per_dataset` subjects with most samples in each data set (the quick protocol's folds:
    big held-out sets make a short run's scores less noisy)."""
    chosen = []
    for ds in sorted(set(datasets.tolist())):
        names, counts = np.unique(subjects[datasets == ds], return_counts=True)
        order = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))
        chosen += [str(names[i]) for i in order[:per_dataset]]
    return chosen
