"""Fixtures shared by every test area."""

from pathlib import Path

import pytest

from epir_core.paths import data_root
from tests.fixtures_data import CLASSES


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data (the composite and the CAS(ME)^3 sheet); never copied in. It comes from licensed
    databases, so a fresh clone has none: the tests that need it skip, saying where they looked."""
    root = data_root()
    if not (root / "megc2019_composite" / "samples.csv").exists():
        pytest.skip(f"real data not found: no megc2019_composite/samples.csv under {root} "
                    "(set EPIR_DATA or put it in ../shared/data)")
    return root


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict:
    """Synthetic clips of the shipped portrait: one micro-expression at known frames, and head drift only."""
    from realtime.demo_clip import ClipSpec, make_clip

    folder = tmp_path_factory.mktemp("clips")
    return {
        "event": make_clip(folder / "event.mp4", ClipSpec()),
        "drift": make_clip(folder / "drift.mp4", ClipSpec(onset=None)),
    }


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained EPIR saved as a checkpoint: its labels are arbitrary, the pipeline is real."""
    import torch

    from epir_core import build_model
    from epir_core.checkpoint import save_checkpoint
    from epir_core.preprocess import InputRecipe

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "untrained.pt"
    return save_checkpoint(path, build_model(num_classes=3).eval(), CLASSES, InputRecipe.composite())
