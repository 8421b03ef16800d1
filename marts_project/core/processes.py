"""Processes on this host, read from /proc: whether one is alive, when it started (so a pid
the kernel gave to a new process is not taken for the old one), and the cores and memory new
ones can take (a container's limits included)."""

from __future__ import annotations

import math
import os
from functools import cache
from pathlib import Path


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


def available_memory(
    proc: Path = Path("/proc"), cgroups: Path = Path("/sys/fs/cgroup")
) -> int | None:
    """Bytes new processes can take without swapping or meeting a memory limit: the host's
    `MemAvailable` (free memory plus the caches the kernel can drop) or, when less, what this
    process's cgroup leaves under its limit (a container's memory limit; cgroup v2 or v1).
    None when neither says."""
    known = [m for m in (_host_available(proc), _cgroup_room(proc, cgroups)) if m is not None]
    return min(known) if known else None


def _host_available(proc: Path) -> int | None:
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


UNLIMITED = 2**62  # cgroup v1 writes "no limit" as a page-rounded 2**63 - 1
_V1_MEMORY = ("memory.limit_in_bytes", "memory.usage_in_bytes")


def _cgroup_room(proc: Path, cgroups: Path) -> int | None:
    """Limit minus usage of this process's memory cgroup, None when it has no limit."""
    for folder, v2 in _cgroup_folders(proc, cgroups, "memory"):
        limit, usage = ("memory.max", "memory.current") if v2 else _V1_MEMORY
        try:
            cap = (folder / limit).read_text().strip()
            if cap == "max" or int(cap) >= UNLIMITED:
                return None
            return max(0, int(cap) - int((folder / usage).read_text()))
        except (OSError, ValueError):
            continue
    return None


def usable_cores(proc: Path = Path("/proc"), cgroups: Path = Path("/sys/fs/cgroup")) -> int:
    """The cores this process may run on: those its CPU affinity allows or, when fewer, its
    cgroup's CPU quota rounded up (a container started with `--cpus 2` on a larger host)."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    quota = _cpu_quota(proc, cgroups)
    return max(1, min(cores, quota or cores))


def _cpu_quota(proc: Path, cgroups: Path) -> int | None:
    """This process's cgroup CPU quota in cores (rounded up), None when it has none."""
    for folder, v2 in _cgroup_folders(proc, cgroups, "cpu"):
        try:
            if v2:
                quota, period = (folder / "cpu.max").read_text().split()
            else:
                quota = (folder / "cpu.cfs_quota_us").read_text().strip()
                period = (folder / "cpu.cfs_period_us").read_text().strip()
            if quota in ("max", "-1"):
                return None
            return max(1, math.ceil(int(quota) / int(period)))
        except (OSError, ValueError):
            continue
    return None


def _cgroup_folders(proc: Path, cgroups: Path, controller: str) -> list[tuple[Path, bool]]:
    """Where this process's cgroup files of `controller` may be, each with whether it is
    cgroup v2: its own cgroup's folder, then the hierarchy's root (inside a container the
    host's path is not mounted and the container's cgroup is the root)."""
    try:
        lines = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return []
    folders = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "" and path:
            root, v2 = cgroups, True
        elif controller in controllers.split(","):
            root, v2 = cgroups / controllers, False
        else:
            continue
        folders += [(root / path.lstrip("/"), v2), (root, v2)]
    return folders
