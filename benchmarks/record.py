"""One benchmark run -> one JSON record with stable keys (schema_version bumps when a key changes)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
import sys
import tempfile
import time

from benchmarks import environment
from benchmarks.config import BenchConfig
from benchmarks.goals import APEX_TO_LABEL, APEX_TO_LABEL_P95, MODEL_CPU, PIPELINE_FPS, REFERENCE, TENSORRT
from benchmarks.model_bench import bench_model
from benchmarks.pipeline_bench import bench_pipeline
from benchmarks.timing import set_threads

# 2: runtime backend names (torch, onnx), threads per latency row and end to end;
# 3: spotting's apex_error_frames per frame rate (was apex_error_frames_30fps), and held expressions
SCHEMA_VERSION = 3


def run_benchmark(cfg: BenchConfig, data_root: Path | None, progress: Callable[[str], None]) -> dict:
    started = time.perf_counter()
    threads = set_threads(cfg.threads)
    record = {
        "schema_version": SCHEMA_VERSION,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "config": cfg.to_dict(),
        "environment": environment.capture(threads),
        "reference": REFERENCE,
    }
    with tempfile.TemporaryDirectory(prefix="epir-bench-") as tmp:
        record["model"] = bench_model(cfg, Path(tmp), progress)
        record["pipeline"] = bench_pipeline(cfg, data_root, Path(tmp), progress)
    record["goals"] = check_goals(record)
    record["elapsed_s"] = time.perf_counter() - started
    return record


def check_goals(record: dict) -> list[dict]:
    rows = [r for r in record["model"]["latency"] if r["batch"] == 1]
    cpu = [r for r in rows if r["device"] == "cpu" and r["dtype"] == "fp32"]
    trt = [r for r in rows if r["backend"] == "tensorrt"]
    e2e = record["pipeline"]["end_to_end"]
    return [
        _best(MODEL_CPU, cpu, "this run timed no model on the CPU (run with --device cpu)"),
        PIPELINE_FPS.check(e2e["fps_sustained"], e2e["reason"]),
        APEX_TO_LABEL.check(e2e["apex_to_label_ms"] and e2e["apex_to_label_ms"]["median_ms"], _latency_reason(e2e)),
        APEX_TO_LABEL_P95.check(e2e["apex_to_label_ms"] and e2e["apex_to_label_ms"]["p95_ms"],
                                e2e["reason"] or f"{e2e['events_spotted']} events"),
        _best(TENSORRT, trt, "this run timed no TensorRT backend (it needs --device cuda)"),
    ]


def _latency_reason(e2e: dict) -> str | None:
    """Split the latency: the spotter must see frames past the apex before it can call an event, and
    the event's recognition (started on the candidate apex) overlaps that wait."""
    if not e2e["recognise_ms"]:
        return e2e["reason"]
    split = e2e["latency_split_ms"]
    return (f"medians: spotting wait {split['spotting_wait']['median_ms']:.0f} ms, input (face mesh + flow) "
            f"{split['input']['median_ms']:.0f} ms and model {split['model']['median_ms']:.1f} ms, both started "
            f"on the candidate apex; label {e2e['recognise_ms']['median_ms']:.0f} ms after the spot")


def _best(goal, rows: list[dict], none_reason: str) -> dict:
    """The goal checked on the fastest measured row; otherwise the reason the rows were skipped."""
    ok = [r for r in rows if r["status"] == "ok"]
    if ok:
        best = min(ok, key=lambda r: r["median_ms"])
        threads = f", {best['threads']} thread(s)" if best["threads"] else ""
        return goal.check(best["median_ms"], f"{best['backend']} {best['dtype']}{threads}")
    reasons = sorted({r["reason"] for r in rows if r["reason"]})
    return goal.check(None, "; ".join(reasons) or none_reason)
