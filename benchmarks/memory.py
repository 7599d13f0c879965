"""Peak memory of one call: torch's allocator peak on a GPU, the process's resident-set growth on a CPU."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass(frozen=True)
class PeakMemory:
    bytes: int
    method: str


def peak_memory(fn: Callable[[], object], cuda: bool) -> PeakMemory:
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return PeakMemory(torch.cuda.max_memory_allocated() - before, "torch.cuda.max_memory_allocated delta")
    # Approximate: memory the allocator already holds from earlier work is reused and not counted.
    return PeakMemory(_rss_peak_delta(fn), "process peak RSS growth (/proc/self VmHWM - VmRSS before)")


def _rss_peak_delta(fn: Callable[[], object]) -> int:
    # Writing "5" to clear_refs resets the high-water mark to the current RSS (Linux >= 4.0), so the
    # peak read after the call is this call's peak, not the whole process's history.
    _CLEAR_REFS.write_text("5")
    before = _status_kb("VmRSS")
    fn()
    return max(0, _status_kb("VmHWM") - before) * 1024


def _status_kb(key: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)
