"""Running a trained model: device choice, inference backends with a parity check, and the model
cache they share. The live app and the benchmark both build their backends here."""

from epir_core.runtime.backends import BACKENDS, Backend, RuntimeOptions, first_line, input_shape, make_backend
from epir_core.runtime.cache import ModelCache
from epir_core.runtime.device import DEVICES, resolve_device

__all__ = ["BACKENDS", "DEVICES", "Backend", "ModelCache", "RuntimeOptions", "first_line", "input_shape",
           "make_backend", "resolve_device"]
