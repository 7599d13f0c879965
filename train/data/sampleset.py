"""A set of model-ready samples with the metadata that LOSO needs."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from epir_core.preprocess.recipe import InputRecipe


@dataclass(frozen=True)
class SampleSet:
    inputs: np.ndarray  # N x 3 x 28 x 28 float32 in [0, 1], channels (u, v, strain)
    labels: np.ndarray  # N int64 class ids into class_names
    subjects: np.ndarray  # N str, the LOSO groups (unique across source data sets)
    datasets: np.ndarray  # N str: casme2 | samm | smic | casme3
    sample_ids: np.ndarray  # N str, unique
    class_names: tuple[str, ...]
    recipe: InputRecipe  # how `inputs` were made

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> "SampleSet":
        return replace(
            self,
            inputs=self.inputs[mask],
            labels=self.labels[mask],
            subjects=self.subjects[mask],
            datasets=self.datasets[mask],
            sample_ids=self.sample_ids[mask],
        )
