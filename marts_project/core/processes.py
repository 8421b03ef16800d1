"""Processes on this host, read from /proc: whether one is alive, when it started (so a pid
the kernel gave to a new process is not taken for the old one), and the memory new ones can
take."""

from __future__ import annotations

import os
from functools import cache


def alive(pid: int) -> bool:
    """The process exists and has not exited (a zombie has exited; only its parent has not
    reaped it yet)."""
    return started_at(pid) is not None


def started_at(pid: int) -> float | None:
    """When the process started (epoch seconds), None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if fields[0] == "Z":
        return None
    ticks = int(fields[19])  # field 22 of stat(5): start time in clock ticks after boot
    return _boot_time() + ticks / os.sysconf("SC_CLK_TCK")


@cache
def _boot_time() -> float:
    with open("/proc/stat") as stat:
        return float(next(line.split()[1] for line in stat if line.startswith("btime")))


def available_memory() -> int | None:
    """Bytes the kernel can give new processes without swapping (`MemAvailable`: free memory
    plus the caches it can drop); None where /proc/meminfo does not say."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None
