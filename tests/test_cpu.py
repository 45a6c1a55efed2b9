"""Thread counts that do not oversubscribe: radialog.cpu.free_cores reads how busy each core
is and leaves the busy ones to the processes using them."""

from __future__ import annotations

import os

import pytest

from radialog import cpu

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux only")


def _stat(busy: list[int], idle: list[int]) -> str:
    lines = [f"cpu  {sum(busy)} 0 0 {sum(idle)} 0 0 0 0 0 0"]
    lines += [
        f"cpu{i} {b} 0 0 {d} 0 0 0 0 0 0" for i, (b, d) in enumerate(zip(busy, idle, strict=True))
    ]
    return "\n".join(lines + ["intr 1 2 3", "ctxt 5"]) + "\n"


@pytest.mark.parametrize(
    ("busy_after", "expected"),
    [
        ([100, 0], 1),  # another process keeps core 0 busy: one thread
        ([0, 0], 2),  # quiet machine: both cores
        ([100, 100], 1),  # everything busy: still at least one
        ([60, 0], 1),  # most of a core counts as taken
        ([30, 0], 2),
    ],
)
def test_free_cores_leaves_busy_cores_alone(tmp_path, monkeypatch, busy_after, expected):
    stat = tmp_path / "stat"
    samples = iter([_stat([0, 0], [0, 0]), _stat(busy_after, [100 - b for b in busy_after])])

    def read_stat(cores):
        stat.write_text(next(samples))
        return real(cores)

    real = cpu._cpu_busy
    monkeypatch.setattr(cpu, "PROC_STAT", str(stat))
    monkeypatch.setattr(cpu, "_cpu_busy", read_stat)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert cpu.free_cores(sample_s=0) == expected


def test_free_cores_without_proc_uses_all_usable_cores(monkeypatch):
    monkeypatch.setattr(cpu, "PROC_STAT", "/nonexistent/stat")
    assert cpu.free_cores(sample_s=0) == len(os.sched_getaffinity(0))


def test_free_cores_on_this_machine_is_sane():
    assert 1 <= cpu.free_cores() <= len(os.sched_getaffinity(0))
