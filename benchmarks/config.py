"""How much a benchmark run measures: one frozen config per mode, so runs of a mode compare."""

from __future__ import annotations

from dataclasses import dataclass, replace

from epir_core.config import PRESETS
from epir_core.runtime import BACKENDS


@dataclass(frozen=True)
class BenchConfig:
    mode: str
    device: str = "cpu"  # cpu | cuda
    threads: int = 2  # the goals are stated for 2 CPU threads
    count_presets: tuple[str, ...] = ("epir",)  # presets whose parameters and MACs are counted
    latency_presets: tuple[str, ...] = ("epir",)  # presets whose latency is timed
    batches: tuple[int, ...] = (1,)
    dtypes: tuple[str, ...] = ("fp32",)
    backends: tuple[str, ...] = ("torch",)  # epir_core.runtime backends timed at batch 1
    throughput_backends: tuple[str, ...] = ("torch",)  # timed at batch > 1
    live_backend: str = "torch"  # the live app's backend choice for the pipeline (auto = what it picks)
    warmup: int = 3
    runs: int = 10
    throughput_runs: int = 3  # runs at batch > 1, which take far longer per run
    breakdown: bool = False  # per-module time of the eager model ("where the time goes")
    pipeline_runs: int = 5  # timed calls per pipeline stage
    video_seconds: float = 2.0  # synthetic clip for the end-to-end run, at 30 fps
    latency_runs: int = 1  # paced passes of that clip (one event each): the apex-to-label spread

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


ALL_PRESETS = tuple(PRESETS)  # the paper's ablation, vit ... epir
EVERY_BACKEND = tuple(reversed(BACKENDS))  # eager first, as the baseline of the table
THROUGHPUT_BATCH = 64

MODES = {
    # CI smoke: seconds. Eager (torch) only: an ONNX export or a compilation alone takes longer than that.
    "quick": BenchConfig(mode="quick", video_seconds=1.0, pipeline_runs=3),
    # Well under a minute on the 2-core CPU: each ONNX export takes several seconds, so ONNX Runtime is
    # timed at batch 1 only, and torch.compile is left to --full (its first compile alone takes 20-60 s
    # there, ../shared/docs/runtime.md).
    "default": BenchConfig(
        mode="default",
        count_presets=ALL_PRESETS,
        batches=(1, THROUGHPUT_BATCH),
        backends=("torch", "onnx", "tensorrt"),
        live_backend="auto",  # what epir-live runs: ONNX Runtime on the CPU (the shipped model's own export)
        warmup=10,
        runs=100,
        throughput_runs=10,
        breakdown=True,
        pipeline_runs=20,
        video_seconds=4.0,
        latency_runs=6,
    ),
    "full": BenchConfig(
        mode="full",
        count_presets=ALL_PRESETS,
        latency_presets=ALL_PRESETS,
        batches=(1, THROUGHPUT_BATCH),
        dtypes=("fp32", "fp16"),
        backends=EVERY_BACKEND,
        throughput_backends=EVERY_BACKEND,
        live_backend="auto",
        warmup=20,
        runs=300,
        throughput_runs=30,
        breakdown=True,
        pipeline_runs=50,
        video_seconds=10.0,
        latency_runs=20,
    ),
}


def make_config(mode: str, device: str, threads: int) -> BenchConfig:
    cfg = replace(MODES[mode], device=device, threads=threads)
    if device == "cuda" and mode == "default":
        # On a GPU compilation is quick enough, and fp16 is the precision worth knowing there.
        cfg = replace(cfg, backends=EVERY_BACKEND, throughput_backends=EVERY_BACKEND, dtypes=("fp32", "fp16"))
    return cfg
