"""The EPIR network, one module per block of the paper."""

from epir_core.model.epir import EPIR, build_model
from epir_core.model.mirror import MirrorAveraged, hflip

__all__ = ["EPIR", "MirrorAveraged", "build_model", "hflip"]
