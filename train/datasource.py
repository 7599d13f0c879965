"""Which samples a LOSO protocol trains on: the composite flows, or a cache from `train.prepare`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from train.data.composite import load_composite
from train.data.sampleset import SampleSet

DATABASES = ("casme2", "samm", "smic", "casme3")


class DataSourceError(Exception):
    """The data options name no usable samples; the message starts with the option to fix."""


def load_samples(protocol: str, database: str | None, data_root: Path, prepared: Path | None) -> SampleSet:
    """cde: all composite (or prepared) samples. sde: one database, its own classes.

    Without --prepared the SDE sets come from the composite, i.e. with its 3 classes: right for SMIC
    (the paper's SMIC SDE is 3-class), a 3-class variant for CASME II and SAMM (the paper's are
    5-class, which needs --prepared), and impossible for CAS(ME)^3 (not in the composite).
    """
    if protocol == "cde" and database is not None:
        raise DataSourceError("--database: only with --protocol sde")
    if protocol == "sde" and database not in DATABASES:
        raise DataSourceError(f"--database: --protocol sde needs one of {', '.join(DATABASES)}")
    if prepared is not None:
        samples = _read(lambda: _load_prepared(prepared, protocol), "--prepared", prepared)
    elif database == "casme3":
        raise DataSourceError("--prepared: CAS(ME)^3 is not in the composite; prepare it with python -m train.prepare")
    else:
        samples = _read(lambda: load_composite(data_root), "--data", data_root)
    if database is not None:
        samples = _only_present_classes(samples.subset(samples.datasets == database))
        if len(samples) == 0:
            raise DataSourceError(f"{'--prepared' if prepared else '--data'}: holds no {database} samples")
    return samples


def _load_prepared(directory: Path, protocol: str) -> SampleSet:
    from train.data.prepared import load_prepared  # the raw-data side; only needed with --prepared

    return load_prepared(Path(directory), protocol)


def _read(load, option: str, path: Path) -> SampleSet:
    if not Path(path).exists():
        raise DataSourceError(f"{option}: {path} does not exist")
    try:
        samples = load()
    except (OSError, ValueError, KeyError) as exc:
        raise DataSourceError(f"{option}: {exc}") from exc
    if len(samples) == 0:
        raise DataSourceError(f"{option}: {path} holds no samples")
    return samples


def _only_present_classes(samples: SampleSet) -> SampleSet:
    """Drop class names no sample carries (a cache may list several databases' classes) and renumber."""
    present = np.unique(samples.labels)
    remap = np.full(len(samples.class_names), -1, dtype=np.int64)
    remap[present] = np.arange(len(present))
    return replace(samples, labels=remap[samples.labels], class_names=tuple(samples.class_names[i] for i in present))
