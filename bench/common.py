"""What every benchmark shares: seeding landing files, and running a command the way users do
(a subprocess on a persistent embedded instance) with its wall time and its own peak RSS."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from marts_project.deployment import open_resource
from marts_project.settings import Settings
from marts_project.simulator import FAR_FUTURE, SimConfig, land

ROOT = Path(__file__).resolve().parents[1]
END = dt.date(2026, 10, 31)
MARTS = str(Path(sys.executable).with_name("marts"))
# Runs a command and prints its peak RSS (KiB): the child's own maximum, not this process's.
PEAK = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
    "stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def days_before(end: dt.date, count: int) -> list[dt.date]:
    """`count` consecutive days ending with `end`."""
    return [end - dt.timedelta(days=i) for i in reversed(range(count))]


def seed(folder: Path, days: list[dt.date], cfg: SimConfig) -> float:
    """Landing files for `days` under `folder` (never timed); returns their size in MB."""
    land(open_resource(Settings.local(folder), "landing"), days, FAR_FUTURE, cfg)
    return sum(p.stat().st_size for p in (folder / "landing").rglob("*.csv")) / 1e6


def _tree_rss(root: int) -> int:
    """Resident bytes of process `root` and all its descendants now, from /proc (Linux)."""
    processes = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        processes[int(stat.parent.name)] = (int(fields[1]), int(fields[21]))  # ppid, rss pages
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, (ppid, _) in processes.items() if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(processes[pid][1] for pid in tree if pid in processes) * os.sysconf("SC_PAGE_SIZE")


def timed_command(
    folder: Path, *argv: str, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of one command run on the data folder `folder`, with its
    persistent Dagster instance in `folder/dagster_home` and the sensors off.

    The peak is the largest process's own maximum (the kernel's, exact) or, when the command
    runs worker processes, the highest sum over its process tree sampled every 0.2 s, whichever
    is higher: workers each hold a chunk, and it is their sum that a machine must have. `env`
    adds settings (another warehouse, say) to the environment."""
    env = {**os.environ, **(env or {}), "MARTS_DATA_DIR": str(folder), "MARTS_SENSORS": "off"}
    env.pop("DAGSTER_HOME", None)  # the folder's own instance, never the operator's
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", PEAK, *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    tree_peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal tree_peak
        while not stop.wait(0.2):
            tree_peak = max(tree_peak, _tree_rss(child.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = child.communicate()
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    if child.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed: {err[-2000:]}")
    largest = int(out.split()[-1]) * 1024  # KiB
    return seconds, max(largest, tree_peak) / 1024**3


def marts(folder: Path, *argv: str, env: dict[str, str] | None = None) -> tuple[float, float]:
    """`marts <argv>` as a user runs it: wall seconds and peak RSS (GB)."""
    return timed_command(folder, MARTS, *argv, env=env)
