"""The EPIR network, one module per block of the paper."""

from epir_core.model.epir import EPIR, build_model

__all__ = ["EPIR", "build_model"]
