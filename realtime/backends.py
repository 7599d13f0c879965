"""Inference backends: one call, logits = backend(x), whatever runs underneath.

    tensorrt  torch-tensorrt on a CUDA GPU, fp16, engine cached on disk, CUDA graphs
    onnx      the dense-merge ONNX export run by ONNX Runtime (CPU or CUDA provider)
    compile   torch.compile (CUDA graphs on a GPU)
    torch     eager PyTorch

`auto` tries them fastest-first for the device (measured: ../shared/docs/runtime.md; on CPU ONNX Runtime is
about 2.5x faster than eager, torch.compile is slower than ONNX Runtime and compiles for up to a
minute) and takes the first that builds and agrees with eager PyTorch. A backend that was asked for
by name and cannot be used raises BackendUnavailable (exit code 5).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from epir_core.errors import EPIRError

AUTO_ORDER = {"cuda": ("tensorrt", "onnx", "compile", "torch"), "cpu": ("onnx", "torch")}
BACKENDS = ("tensorrt", "compile", "onnx", "torch")
INPUT_SHAPE = (1, 3, 28, 28)  # batch 1: the live app classifies one event at a time
# Largest logit difference from eager fp32 that a backend may show (fp16 TensorRT rounds more).
TOLERANCE = {"tensorrt": 5e-2, "onnx": 1e-3, "compile": 1e-3, "torch": 0.0}


class BackendUnavailable(EPIRError):
    """The requested device or backend cannot be used here (exit code 5)."""


@dataclass
class Backend:
    name: str
    device: str
    run: Callable[[np.ndarray], np.ndarray]  # 1 x 3 x 28 x 28 float32 -> 1 x C float32 logits
    note: str = ""  # how it was chosen, or why faster ones were skipped

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.run(x)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable("--device cuda: no CUDA GPU is available to this PyTorch build")
    if device not in ("cpu", "cuda"):
        raise BackendUnavailable(f"unknown device {device!r}")
    return device


def make_backend(model: torch.nn.Module, name: str, device: str, cache_dir: Path, model_key: str) -> Backend:
    """model: eval-mode fp32; model_key names the weights in cache file names (see file_key)."""
    device = resolve_device(device)
    if name != "auto" and name not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {name!r}; expected auto or one of {', '.join(BACKENDS)}")
    candidates = AUTO_ORDER[device] if name == "auto" else (name,)
    model = model.to(device).eval()
    example = torch.rand(INPUT_SHAPE, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = model(example.to(device)).float().cpu().numpy()
    skipped = []
    for candidate in candidates:
        try:
            run = BUILDERS[candidate](model, device, Path(cache_dir), model_key)
            gap = float(np.abs(run(example.numpy()) - expected).max())
        except BackendUnavailable as e:
            skipped.append(f"{candidate}: {e}")
            continue
        except Exception as e:  # noqa: BLE001 - a backend's build can fail in many library-specific ways
            skipped.append(f"{candidate}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            continue
        if gap > TOLERANCE[candidate]:
            skipped.append(f"{candidate}: output differs from PyTorch by {gap:.2g}")
            continue
        note = "chosen by auto" if name == "auto" else "requested"
        if skipped:
            note += "; skipped " + "; ".join(skipped)
        return Backend(candidate, device, run, note)
    raise BackendUnavailable(f"backend {name} unavailable on {device}: " + "; ".join(skipped))


def file_key(path: Path) -> str:
    """Short content hash of a checkpoint, so cached engines follow the weights, not the file name."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _torch(model, device, cache_dir, model_key):
    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x).to(device)).float().cpu().numpy()

    return run


def _compile(model, device, cache_dir, model_key):
    compiled = torch.compile(model, mode="reduce-overhead" if device == "cuda" else "default")
    return _torch(compiled, device, cache_dir, model_key)


def _onnx(model, device, cache_dir, model_key):
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise BackendUnavailable("onnxruntime is not installed (pip install 'epir-live[onnx]')") from e
    from epir_core.export import export_onnx

    provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    if provider not in ort.get_available_providers():
        raise BackendUnavailable(f"onnxruntime has no {provider}")
    path = Path(cache_dir) / f"epir-{model_key}-b1.onnx"
    if not path.exists():
        # Written beside and renamed into place: an export killed half-way must not leave a broken
        # file that every later run would find in the cache.
        partial = path.with_name(path.name + ".partial")
        export_onnx(model, partial, batch_size=1)  # exports a dense-merge CPU copy
        os.replace(partial, path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # measured steadier than 2 threads on the 2-core machine
    session = ort.InferenceSession(str(path), options, providers=[provider])
    input_name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    return run


def _tensorrt(model, device, cache_dir, model_key):
    if device != "cuda":
        raise BackendUnavailable("TensorRT needs --device cuda")
    try:
        import torch_tensorrt
    except Exception as e:  # noqa: BLE001 - without TensorRT libraries the import raises a bare Exception
        raise BackendUnavailable(f"torch_tensorrt cannot be imported ({type(e).__name__})") from e
    from epir_core.export import export_model

    # The dense merge: torch-tensorrt's rewrite of the scatter merge truncates to integers.
    # fp16 via a half model, because enabled_precisions is ignored from torch-tensorrt 2.13 on.
    half = export_model(model).to("cuda").half()
    example = torch.rand(INPUT_SHAPE, device="cuda", dtype=torch.float16)
    key = "-".join(
        (torch.cuda.get_device_name(), f"torch{torch.__version__}", f"trt{torch_tensorrt.__version__}", "fp16", model_key)
    )
    path = Path(cache_dir) / (re.sub(r"[^A-Za-z0-9_.+-]", "_", key) + ".ep")
    if path.exists():
        engine = torch_tensorrt.load(str(path)).module()
    else:
        engine = torch_tensorrt.compile(half, ir="dynamo", inputs=[example])
        path.parent.mkdir(parents=True, exist_ok=True)
        torch_tensorrt.save(engine, str(path), inputs=[example])
    torch_tensorrt.runtime.set_cudagraphs_mode(True)  # a model this small is launch-bound

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return engine(torch.from_numpy(x).to("cuda", torch.float16)).float().cpu().numpy()

    return run


BUILDERS = {"tensorrt": _tensorrt, "compile": _compile, "onnx": _onnx, "torch": _torch}
