"""The dbt-duckdb peer: builds `dbt_marketing` in its own virtualenv and times `dbt run`."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE / "dbt_marketing"
VENV = HERE / ".venv"
DBT = VENV / "bin" / "dbt"


def ensure_installed() -> Path:
    """Create bench/peers/.venv with the pinned dbt-duckdb on first use; return dbt's path."""
    if not DBT.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "-q", "-r", str(HERE / "requirements.txt")],
            check=True,
        )
    return DBT


def run(landing: Path, database: Path, start: dt.date, end: dt.date) -> float:
    """Seconds for one `dbt run` of the incremental fact over the days [start, end], as a
    user would run it (process start-up and project parsing included)."""
    scratch = database.parent / f"{database.stem}-dbt"
    env = {
        **os.environ,
        "PEER_DB": str(database),
        "PEER_LANDING": str(landing),
        "DBT_TARGET_PATH": str(scratch / "target"),
        "DBT_LOG_PATH": str(scratch / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    window = f'{{start: "{start}", end: "{end}"}}'
    started = time.perf_counter()
    subprocess.run(
        [str(ensure_installed()), "run", "--profiles-dir", ".", "--project-dir", "."]
        + ["--vars", window, "--quiet"],
        cwd=PROJECT,
        env=env,
        check=True,
    )
    return time.perf_counter() - started
