"""Inference backends for the model benchmark, each detected at run time.

`open_backend` yields a zero-argument callable that runs one forward pass on a fixed input. A backend
that cannot run here (no GPU, package missing, export failed) raises `BackendUnavailable` with the
reason, which the benchmark records as "skipped"; any other exception (an export or a compilation
that fails) is recorded as "failed" with its first line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

BACKENDS = ("eager", "compile", "onnxruntime", "tensorrt")


class BackendUnavailable(Exception):
    """The backend cannot run on this machine; the message says why, in one line."""


@contextmanager
def open_backend(
    name: str, model: nn.Module, x: torch.Tensor, threads: int, workdir: Path
) -> Iterator[Callable[[], object]]:
    """model: eval mode, already on x's device and dtype; x: B x 3 x 28 x 28.

    Call the yielded function inside the `with` block only.
    """
    openers = {"eager": _eager, "compile": _compile, "onnxruntime": _onnxruntime, "tensorrt": _tensorrt}
    if name not in openers:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    # No autograd graph: this is inference, and torch.compile guards on the grad mode it saw first.
    with torch.no_grad():
        yield from openers[name](model, x, threads, workdir)


def _eager(model, x, threads, workdir):
    yield lambda: model(x)


def _compile(model, x, threads, workdir):
    # On a GPU "reduce-overhead" replays CUDA graphs: a model this small is bound by kernel launches.
    mode = "reduce-overhead" if x.is_cuda else "default"
    # Each row compiles a fresh model; without a reset, dynamo's recompile limit (8) would silently
    # run later rows of a --full sweep in eager mode.
    torch.compiler.reset()
    compiled = torch.compile(model, mode=mode)
    compiled(x)  # compile now, so the compile time stays out of the timings
    yield lambda: compiled(x)


def _onnxruntime(model, x, threads, workdir):
    try:
        import onnxruntime as ort
        from epir_core.export import export_onnx
    except ImportError as e:
        raise BackendUnavailable(f"not installed: {e.name}") from e
    if x.dtype != torch.float32:
        raise BackendUnavailable("export_onnx writes an fp32 graph; fp16 is measured with torch and TensorRT")
    providers = ["CUDAExecutionProvider"] if x.is_cuda else ["CPUExecutionProvider"]
    if providers[0] not in ort.get_available_providers():
        raise BackendUnavailable(f"onnxruntime has no {providers[0]} (installed: {ort.get_available_providers()})")

    path = workdir / f"model_b{x.shape[0]}.onnx"
    # A static batch graph: about 25 % faster at batch 1 than a dynamic one (../shared/docs/runtime.md).
    export_onnx(model, path, batch_size=x.shape[0], dynamic_batch=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=providers)
    if not x.is_cuda:
        feed = {session.get_inputs()[0].name: x.numpy()}
        yield lambda: session.run(None, feed)
        return
    # Bind the input where it already lives on the GPU so the timing is not a host-to-device copy.
    x = x.contiguous()  # kept referenced here: ONNX Runtime reads its memory through a raw pointer
    binding = session.io_binding()
    binding.bind_input(session.get_inputs()[0].name, "cuda", 0, np.float32, tuple(x.shape), x.data_ptr())
    binding.bind_output(session.get_outputs()[0].name, "cuda")
    yield lambda: session.run_with_iobinding(binding)


def _tensorrt(model, x, threads, workdir):
    if not x.is_cuda:
        raise BackendUnavailable("TensorRT needs a CUDA device")
    try:
        import torch_tensorrt
    except Exception as e:  # without TensorRT libraries the import raises a bare Exception
        raise BackendUnavailable(f"torch_tensorrt not importable: {first_line(e)}") from e
    from epir_core.export import export_model

    # The dense one-hot merge: TensorRT's rewrite of scatter-mean truncates to integers (runtime.md).
    # The precision follows the model's dtype: `enabled_precisions` is ignored from 2.13 on.
    dense = export_model(model).to(x.device, x.dtype)
    trt_module = torch_tensorrt.compile(dense, ir="dynamo", inputs=[x])
    # CUDA graphs: at batch 1 the engine is faster than the launches that feed it.
    with torch_tensorrt.runtime.enable_cudagraphs(trt_module) as graphed:
        yield lambda: graphed(x)


def first_line(e: BaseException) -> str:
    """type: first line of the message, short enough for a table cell and a JSON field."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]
