"""What every benchmark here measures the same way: percentiles, CPU time from /proc, and
how busy the shared machine was. One definition each, so figures from bench/relay.py,
bench/chat.py and the others compare (issue 18: they had drifted apart)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``q`` of the values
    at or below it (q = 0.95: p95). NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, every tenant and core, from
    /proc/stat: the difference of two readings gives the cores busy over a window
    (busy / seconds) and the share busy (busy / total)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def load_average() -> str:
    """/proc/loadavg's 1, 5 and 15 minute figures: how busy the shared machine was."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
