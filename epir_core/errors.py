"""Typed errors of the core, so that each caller (trainer, live app, benchmark) can turn them into
its own message and exit code instead of a traceback."""


class EPIRError(Exception):
    """Base class of every error the core raises on purpose."""


class CheckpointError(EPIRError):
    """A file is missing, corrupt, or not an EPIR checkpoint."""


class NoFaceError(EPIRError):
    """No face was found in a frame."""


class FaceTooSmallError(EPIRError):
    """A face was found but is too small to give a usable optical flow."""


class FlowError(EPIRError):
    """Optical flow failed or produced non-finite values."""


class FaceModelError(EPIRError):
    """A shipped face model file is missing or does not match its recorded SHA-256."""


class DeviceUnavailable(EPIRError):
    """The requested device (cuda) is not available to this PyTorch build."""


class BackendUnavailable(EPIRError):
    """An inference backend cannot run here: package missing, wrong device, or output unlike PyTorch's."""


class CacheError(EPIRError):
    """The model cache folder cannot be trusted: owned by another user, or writable by group or others."""
