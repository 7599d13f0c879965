"""Where the project's data and caches live by default; every command asks here."""

from __future__ import annotations

import os
from pathlib import Path

from epir_core.provenance import REPO_ROOT


def data_root() -> Path:
    """$EPIR_DATA when set, else ../shared/data beside the checkout (the composite and the sheets)."""
    return Path(os.environ.get("EPIR_DATA") or REPO_ROOT.parent / "shared" / "data")


def cache_root() -> Path:
    """Exported and compiled models: $XDG_CACHE_HOME/epir-live, else ~/.cache/epir-live."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "epir-live"
