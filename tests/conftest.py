"""Fixtures shared by every test area."""

from pathlib import Path

import pytest

from train.session import DEFAULT_DATA  # $EPIR_DATA, else ../shared/data beside the checkout


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data (the composite and the CAS(ME)^3 sheet); never copied in. It comes from licensed
    databases, so a fresh clone has none: the tests that need it skip, saying where they looked."""
    if not (DEFAULT_DATA / "megc2019_composite" / "samples.csv").exists():
        pytest.skip(f"real data not found: no megc2019_composite/samples.csv under {DEFAULT_DATA} "
                    "(set EPIR_DATA or put it in ../shared/data)")
    return DEFAULT_DATA
