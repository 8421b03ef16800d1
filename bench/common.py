"""What every benchmark shares: seeding landing files, and running a command the way users do
(a subprocess on a persistent embedded instance) with its wall time and its own peak RSS."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

from marts_project.resources.deployment import open_resource
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


def timed_command(folder: Path, *argv: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of one command run on the data folder `folder`, with its
    persistent Dagster instance in `folder/dagster_home` and the sensors off."""
    env = {**os.environ, "MARTS_DATA_DIR": str(folder), "MARTS_SENSORS": "off"}
    env.pop("DAGSTER_HOME", None)  # the folder's own instance, never the operator's
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", PEAK, *argv], env=env, capture_output=True, text=True, cwd=ROOT
    )
    seconds = time.perf_counter() - started
    if out.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed: {out.stderr[-2000:]}")
    return seconds, int(out.stdout.split()[-1]) / 1024**2


def marts(folder: Path, *argv: str) -> tuple[float, float]:
    """`marts <argv>` as a user runs it: wall seconds and peak RSS (GB)."""
    return timed_command(folder, MARTS, *argv)
