"""The one timing harness: warm-up, many timed runs, median and 95th percentile.

On a GPU each run is bracketed by CUDA events, because a host clock would only measure the kernel
launch; on the CPU the monotonic perf_counter is the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
import time

import numpy as np
import torch


@dataclass(frozen=True)
class Stats:
    median_ms: float
    p95_ms: float
    mean_ms: float
    min_ms: float
    runs: int
    warmup: int
    timer: str  # "cuda_events" | "perf_counter"

    @staticmethod
    def keys() -> list[str]:
        """The record's timing keys, which a skipped measurement carries as nulls."""
        return [f.name for f in fields(Stats)]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_samples(cls, samples_ms: list[float], warmup: int, timer: str) -> "Stats":
        a = np.asarray(samples_ms, dtype=np.float64)
        return cls(
            median_ms=float(np.median(a)),
            p95_ms=float(np.percentile(a, 95)),
            mean_ms=float(a.mean()),
            min_ms=float(a.min()),
            runs=len(a),
            warmup=warmup,
            timer=timer,
        )


def time_callable(fn: Callable[[], object], warmup: int, runs: int, cuda: bool = False) -> Stats:
    """Time `fn()` `runs` times after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    if cuda:
        return _time_cuda(fn, warmup, runs)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return Stats.from_samples(samples, warmup, "perf_counter")


def _time_cuda(fn: Callable[[], object], warmup: int, runs: int) -> Stats:
    torch.cuda.synchronize()
    pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(runs)]
    for start, end in pairs:
        start.record()
        fn()
        end.record()
    # One synchronisation at the end keeps the host from stalling the queue between runs.
    torch.cuda.synchronize()
    return Stats.from_samples([s.elapsed_time(e) for s, e in pairs], warmup, "cuda_events")


def time_samples(samples_ms: list[float], warmup: int = 0) -> Stats:
    """Stats of durations measured elsewhere (e.g. per-frame stage timings of the live pipeline)."""
    return Stats.from_samples(samples_ms, warmup, "perf_counter")


def set_threads(n: int) -> dict[str, int]:
    """Use `n` threads in torch and OpenCV (ONNX Runtime gets it per session); returns what took effect."""
    import cv2

    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    return {"torch": torch.get_num_threads(), "opencv": cv2.getNumThreads(), "onnxruntime": n}
