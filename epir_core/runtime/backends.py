"""Inference backends for the live app and the benchmark: one call, whatever runs underneath.

    tensorrt  torch-tensorrt on a CUDA GPU, program cached on disk, CUDA graphs
    onnx      the dense-merge ONNX export run by ONNX Runtime (CPU or CUDA provider)
    compile   torch.compile (CUDA graphs on a GPU)
    torch     eager PyTorch

`make_backend` builds the one asked for, or with "auto" the fastest-first candidates for the device
(measured: ../shared/docs/runtime.md; on CPU ONNX Runtime is about 2.5x faster than eager and
torch.compile is slower than ONNX Runtime and compiles for up to a minute), and keeps the first
whose output agrees with eager PyTorch fp32 on the model's own input shape (model.config).
A backend that cannot be used here, or whose output differs, raises BackendUnavailable with the
reasons; a named backend whose build fails otherwise raises that error.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from epir_core.errors import BackendUnavailable
from epir_core.runtime.cache import ModelCache
from epir_core.runtime.device import resolve_device

BACKENDS = ("tensorrt", "compile", "onnx", "torch")
AUTO_ORDER = {"cuda": ("tensorrt", "onnx", "compile", "torch"), "cpu": ("onnx", "torch")}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
# TensorRT runs in fp16 unless told otherwise: it is the fastest, and within the fp16 tolerance.
DEFAULT_PRECISION = {"tensorrt": "fp16"}
# Largest logit difference from eager fp32 that a backend may show; fp16 rounds more.
TOLERANCE = {"fp32": 1e-3, "fp16": 5e-2}


@dataclass(frozen=True)
class RuntimeOptions:
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 1  # ONNX Runtime's intra-op threads; torch's are the process's (torch.set_num_threads)
    batch: int = 1  # the live app classifies one event at a time
    precision: str | None = None  # fp32 | fp16; None = the backend's default (DEFAULT_PRECISION, else fp32)


@dataclass(frozen=True)
class Backend:
    name: str
    device: str
    precision: str
    threads: int | None  # CPU threads it computes with; None on a GPU
    # x: batch x C x H x W on `device` in `precision`, contiguous -> logits as a torch tensor. No host
    # copy and no synchronisation: what the benchmark times.
    run_tensor: Callable[[torch.Tensor], torch.Tensor]
    note: str = ""  # how it was chosen, or why faster ones were skipped

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """float32 numpy batch in, float32 numpy logits out, host copies included (the live app)."""
        inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device, DTYPES[self.precision])
        return self.run_tensor(inputs).float().cpu().numpy()


def make_backend(model: torch.nn.Module, name: str, options: RuntimeOptions, cache: ModelCache) -> Backend:
    """model: an eval-mode fp32 EPIR (its config gives the input shape); moved to the device."""
    device = resolve_device(options.device)
    if name != "auto" and name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected auto or one of {', '.join(BACKENDS)}")
    if options.precision not in (None, *DTYPES):
        raise ValueError(f"unknown precision {options.precision!r}; expected one of {', '.join(DTYPES)}")
    model = model.to(device).eval()
    example = torch.rand(input_shape(model, options.batch), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = model(example.to(device)).float().cpu()
    key = weights_key(model)
    skipped = []
    for candidate in AUTO_ORDER[device] if name == "auto" else (name,):
        precision = options.precision or DEFAULT_PRECISION.get(candidate, "fp32")
        try:
            run = BUILDERS[candidate](model, device, precision, options, cache, key)
            with torch.inference_mode():
                got = run(example.to(device, DTYPES[precision]).contiguous()).float().cpu()
            gap = float((got - expected).abs().max())
        except BackendUnavailable as e:
            skipped.append(f"{candidate}: {e}")
            continue
        except Exception as e:  # noqa: BLE001 - a backend's build can fail in many library-specific ways
            if name != "auto":
                raise  # asked for by name: a failure, which the caller reports as such
            skipped.append(f"{candidate}: {first_line(e)}")
            continue
        if not gap <= TOLERANCE[precision]:  # a NaN gap fails too
            skipped.append(f"{candidate}: output differs from PyTorch by {gap:.2g}")
            continue
        notes = ["chosen by auto" if name == "auto" else "requested"]
        if skipped:
            notes.append("skipped " + "; ".join(skipped))
        if cache.rebuilt:
            notes.append("rebuilt damaged cache files " + "; ".join(cache.rebuilt))
        threads = None if device == "cuda" else options.threads if candidate == "onnx" else torch.get_num_threads()
        return Backend(candidate, device, precision, threads, run, "; ".join(notes))
    raise BackendUnavailable(f"backend {name} unavailable on {device}: " + "; ".join(skipped))


def weights_key(model: torch.nn.Module) -> str:
    """Short hash of the config and weights, so cached programs follow the model, not a file name."""
    digest = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def input_shape(model: torch.nn.Module, batch: int) -> tuple[int, int, int, int]:
    """batch x C x H x W, as the model's config says (u, v, strain at 28 x 28 for EPIR)."""
    cfg = model.config
    return batch, cfg.in_channels, cfg.image_size, cfg.image_size


def first_line(e: BaseException) -> str:
    """type: first line of the message, short enough for a table cell and a JSON field."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


def _cast(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """The model in `precision`; a copy when that differs, so the caller's fp32 model is untouched."""
    return model if precision == "fp32" else copy.deepcopy(model).to(DTYPES[precision])


def _inference(module: Callable) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return module(x)

    return run


def _torch(model, device, precision, options, cache, key):
    return _inference(_cast(model, precision))


def _compile(model, device, precision, options, cache, key):
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache.inductor_dir())
    # A fresh compile: without a reset, dynamo's recompile limit (8) would silently run later
    # models of a benchmark sweep in eager mode. On a GPU "reduce-overhead" replays CUDA graphs.
    torch.compiler.reset()
    return _inference(torch.compile(_cast(model, precision), mode="reduce-overhead" if device == "cuda" else "default"))


def _onnx(model, device, precision, options, cache, key):
    try:
        import onnxruntime as ort

        from epir_core.export import OPSET, export_onnx
    except ImportError as e:
        raise BackendUnavailable(f"{e.name} is not installed (pip install 'epir-live[onnx]')") from e
    if precision != "fp32":
        raise BackendUnavailable("the ONNX export is fp32; fp16 runs on torch, compile and TensorRT")
    provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    if provider not in ort.get_available_providers():
        raise BackendUnavailable(f"onnxruntime has no {provider}")
    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = options.threads
    session_options.inter_op_num_threads = 1
    # A static batch graph: about 25 % faster at batch 1 than a dynamic one (../shared/docs/runtime.md).
    session = cache.get(
        f"epir-{key}-b{options.batch}-opset{OPSET}.onnx",
        build=lambda tmp: export_onnx(model, tmp, batch_size=options.batch),
        load=lambda path: ort.InferenceSession(str(path), session_options, providers=[provider]),
    )
    input_name, output_name = session.get_inputs()[0].name, session.get_outputs()[0].name
    if device == "cpu":
        return lambda x: torch.from_numpy(session.run(None, {input_name: x.numpy()})[0])
    # On the GPU the input and output are bound where they live, so no host copy is timed.
    out = torch.empty((options.batch, model.config.num_classes), device="cuda")
    binding = session.io_binding()
    binding.bind_output(output_name, "cuda", 0, np.float32, tuple(out.shape), out.data_ptr())

    def run(x: torch.Tensor) -> torch.Tensor:
        binding.bind_input(input_name, "cuda", 0, np.float32, tuple(x.shape), x.data_ptr())
        session.run_with_iobinding(binding)
        return out

    return run


def _tensorrt(model, device, precision, options, cache, key):
    if device != "cuda":
        raise BackendUnavailable("TensorRT needs --device cuda")
    try:
        import torch_tensorrt  # also registers the TensorRT ops that a saved program calls
    except Exception as e:  # noqa: BLE001 - without TensorRT libraries the import raises a bare Exception
        raise BackendUnavailable(f"torch_tensorrt cannot be imported ({type(e).__name__})") from e
    from epir_core.export import export_model

    # The dense merge: torch-tensorrt's rewrite of the scatter merge truncates to integers.
    # The precision is the model's: enabled_precisions is ignored from torch-tensorrt 2.13 on.
    dense = export_model(model).to("cuda", DTYPES[precision])
    example = torch.rand(input_shape(model, options.batch), device="cuda", dtype=DTYPES[precision])
    name = "-".join((torch.cuda.get_device_name(), f"torch{torch.__version__}", f"trt{torch_tensorrt.__version__}",
                     precision, f"b{options.batch}", key))

    def build(tmp) -> None:
        program = torch_tensorrt.compile(dense, ir="dynamo", inputs=[example])
        torch_tensorrt.save(program, str(tmp), output_format="exported_program", inputs=[example])

    # torch.export.load, not torch_tensorrt.load: the latter tries torch.jit.load first, and a
    # TorchScript file can run arbitrary code. An ExportedProgram is a graph and tensors only.
    engine = cache.get(re.sub(r"[^A-Za-z0-9_.+-]", "_", name) + ".ep", build,
                       load=lambda path: torch.export.load(str(path)).module())
    torch_tensorrt.runtime.set_cudagraphs_mode(True)  # a model this small is launch-bound
    return _inference(engine)


BUILDERS = {"tensorrt": _tensorrt, "compile": _compile, "onnx": _onnx, "torch": _torch}
