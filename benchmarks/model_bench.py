"""Model cost: parameters and MACs of every preset, latency per backend / batch / precision, peak memory,
and where the time of one eager forward pass goes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
import time

import numpy as np
import torch
from torch import nn

from benchmarks.config import BenchConfig
from benchmarks.memory import peak_memory
from benchmarks.timing import Stats, time_callable
from epir_core.errors import BackendUnavailable
from epir_core.runtime import ModelCache, RuntimeOptions, first_line, input_shape, make_backend
from epir_core.runtime.backends import DTYPES

NUM_CLASSES = 3  # CDE, the paper's protocol and the shipped model's


def bench_model(cfg: BenchConfig, workdir: Path, progress: Callable[[str], None]) -> dict:
    torch.manual_seed(0)
    try:
        from epir_core import build_model
    except ImportError as e:
        reason = f"model code not importable: {e}"
        return {"status": "skipped", "reason": reason, "complexity": [], "latency": [], "breakdown": None}

    complexity = []
    for name in cfg.count_presets:
        progress(f"counting {name}")
        complexity.append(_complexity(name, build_model(preset=name, num_classes=NUM_CLASSES).eval()))

    latency = []
    cache = ModelCache(workdir / "models")
    for name in cfg.latency_presets:
        for dtype in cfg.dtypes:
            for batch in cfg.batches:
                for backend in cfg.backends if batch == 1 else cfg.throughput_backends:
                    progress(f"timing {name} {backend} batch {batch} {dtype}")
                    latency.append(_latency(name, backend, batch, dtype, cfg, cache))

    breakdown = None
    if cfg.breakdown:
        progress("eager per-module breakdown")
        breakdown = _breakdown(build_model(preset="epir", num_classes=NUM_CLASSES).eval(), cfg)
    return {"status": "ok", "reason": None, "complexity": complexity, "latency": latency, "breakdown": breakdown}


def _complexity(preset: str, model: nn.Module) -> dict:
    from epir_core.complexity import count_parameters

    row = {"preset": preset, "num_classes": NUM_CLASSES, "params": count_parameters(model)}
    try:
        from epir_core.complexity import MAC_COUNTER, count_macs

        with torch.no_grad():
            macs = count_macs(model, input_shape=input_shape(model, 1)[1:])
        return row | {"macs": int(macs), "macs_counter": MAC_COUNTER, "macs_reason": None}
    except ImportError as e:  # ptflops is a dev extra, absent on the GPU machine
        return row | {"macs": None, "macs_counter": None, "macs_reason": str(e)}


def _latency(preset: str, backend: str, batch: int, dtype: str, cfg: BenchConfig, cache: ModelCache) -> dict:
    """One row of the latency table: random weights of `preset` (the cost does not depend on them),
    built by the live app's runtime with the same options; `threads` is the CPU threads it ran on."""
    from epir_core import build_model

    row = {"preset": preset, "backend": backend, "batch": batch, "dtype": dtype, "device": cfg.device}
    empty = dict.fromkeys(Stats.keys() + ["per_sample_ms", "samples_per_s", "setup_s", "threads", "peak_memory_bytes",
                                          "peak_memory_method"])
    if dtype == "fp16" and cfg.device != "cuda":
        return row | empty | {"status": "skipped", "reason": "fp16 is measured on a GPU only"}

    cuda = cfg.device == "cuda"
    runs = cfg.runs if batch == 1 else cfg.throughput_runs
    try:
        memory = _footprint(preset, batch, dtype, cfg) if backend == "torch" else None
        model = build_model(preset=preset, num_classes=NUM_CLASSES).eval()
        options = RuntimeOptions(device=cfg.device, threads=cfg.threads, batch=batch, precision=dtype)
        t0 = time.perf_counter()
        runtime = make_backend(model, backend, options, cache)
        setup_s = time.perf_counter() - t0  # export / compile time and the parity check, kept out of the latency
        x = torch.rand(input_shape(model, batch), device=cfg.device).to(DTYPES[dtype])  # in [0, 1]
        stats = time_callable(lambda: runtime.run_tensor(x), cfg.warmup, runs, cuda=cuda)
    except BackendUnavailable as e:
        return row | empty | {"status": "skipped", "reason": str(e)}
    except Exception as e:  # one broken backend/precision is a "failed" row, not a lost run
        return row | empty | {"status": "failed", "reason": first_line(e)}
    return row | stats.to_dict() | {
        "status": "ok",
        "reason": None,
        "per_sample_ms": stats.median_ms / batch,
        "samples_per_s": 1e3 * batch / stats.median_ms,
        "setup_s": setup_s,
        "threads": runtime.threads,
        "peak_memory_bytes": memory.bytes if memory else None,
        "peak_memory_method": memory.method if memory else None,
    }


def _footprint(preset: str, batch: int, dtype: str, cfg: BenchConfig):
    """Peak memory of building the model on the device and running one forward pass: weights plus
    activations. Measured before the timed runs, whose warm allocator would hide the activations."""
    from epir_core import build_model

    def build_and_run() -> None:
        model = build_model(preset=preset, num_classes=NUM_CLASSES).eval().to(cfg.device, DTYPES[dtype])
        x = torch.rand(input_shape(model, batch), device=cfg.device).to(DTYPES[dtype])
        with torch.no_grad():
            model(x)

    return peak_memory(build_and_run, cfg.device == "cuda")


def _breakdown(model: nn.Module, cfg: BenchConfig) -> dict:
    """Median time per part of one eager batch-1 forward; "other" is the time spent in no submodule."""
    model = model.to(cfg.device)
    x = torch.rand(input_shape(model, 1), device=cfg.device)
    cuda = cfg.device == "cuda"
    per_call: dict[str, list[float]] = defaultdict(list)  # "blocks.3" -> ms of each call
    starts: dict[str, float] = {}

    def clock() -> float:
        if cuda:
            torch.cuda.synchronize()  # host clocks around a module need the queue drained
        return time.perf_counter()

    handles = []
    for name, module in _timed_parts(model):
        handles.append(module.register_forward_pre_hook(lambda m, a, n=name: starts.__setitem__(n, clock())))
        handles.append(
            module.register_forward_hook(lambda m, a, o, n=name: per_call[n].append((clock() - starts[n]) * 1e3))
        )
    totals = []
    with torch.no_grad():
        for i in range(cfg.warmup + cfg.runs):
            t0 = clock()
            model(x)
            if i >= cfg.warmup:
                totals.append((clock() - t0) * 1e3)
    for h in handles:
        h.remove()

    kinds = dict(_timed_parts(model))
    total = float(np.median(totals))
    rows = [
        {"module": name, "kind": type(kinds[name]).__name__, "median_ms": float(np.median(samples[cfg.warmup :]))}
        for name, samples in per_call.items()
    ]
    inside = sum(r["median_ms"] for r in rows)
    rows.append({"module": "other", "kind": "outside submodules", "median_ms": max(0.0, total - inside)})
    for r in rows:
        r["share"] = r["median_ms"] / total
    return {"preset": "epir", "batch": 1, "dtype": "fp32", "total_ms": total, "modules": rows}


def _timed_parts(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's direct children, with module lists opened one level (so each block is timed)."""
    parts = []
    for name, child in model.named_children():
        if isinstance(child, (nn.ModuleList, nn.Sequential)):
            parts.extend((f"{name}.{i}", c) for i, c in enumerate(child))
        else:
            parts.append((name, child))
    return parts
