"""How many CPU threads to use: as many as there are free cores, so that radialog's threads
never compete with each other or with other processes for the same core."""

from __future__ import annotations

import os
import time

PROC_STAT = "/proc/stat"


def free_cores(sample_s: float = 0.1) -> int:
    """The cores this process may use that other processes do not keep busy (sampled from
    /proc/stat for `sample_s`), at least 1; all usable cores where /proc is missing. The
    default thread count of torch (CLI) and llama.cpp unless --threads says otherwise.

    llama.cpp's threads (and torch's OpenMP pool) spin at a barrier after every step, so one
    thread more than there are free cores makes each step wait for a thread the OS has
    descheduled. Measured on a 2-core machine beside a CPU-bound process (`radialog report`,
    60 tokens): 194 s with 2 threads, 14 s with 1."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not cores:
        return max(1, os.cpu_count() or 1)
    try:
        first = _cpu_busy(cores)
        time.sleep(sample_s)
        second = _cpu_busy(cores)
    except (OSError, ValueError, IndexError, KeyError):
        return len(cores)
    busy = sum(b2 - b1 for (b1, _), (b2, _) in zip(first, second, strict=True))
    total = sum(t2 - t1 for (_, t1), (_, t2) in zip(first, second, strict=True))
    others = len(cores) * busy / total if total else 0.0  # cores kept busy (we sleep)
    return max(1, min(len(cores), len(cores) - round(others)))


def _cpu_busy(cores: list[int]) -> list[tuple[int, int]]:
    """(busy, total) jiffies of each of `cores` from /proc/stat."""
    rows = {}
    with open(PROC_STAT) as f:
        for line in f:
            name, *values = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                rows[int(name[3:])] = [int(v) for v in values]
    out = []
    for c in cores:
        v = rows[c]
        idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
        out.append((sum(v[:8]) - idle, sum(v[:8])))
    return out
