"""The libraries a long-lived process imports before it knows which code location it runs.

Why: the run host and each Celery worker process load the code location before their first run,
and most of that load is libraries every code location of marts imports (measured in a worker:
0.76 s of them against 0.33 s of the location's own modules; a run host started by the first
run took 3 s before that run's first step). A spare run host, which the daemon starts when it
starts, and each Celery worker's main process, before it forks its pool, import them while
idle, so a run host or a worker process pays only the location's own modules. Importing is all: no
connection, thread or file is opened, so a fork afterwards is as safe as the run host's fork
after loading the whole location. Nothing of the code location itself is imported here: what
runs is still the code as it is on disk when a run host or a worker process loads it.
"""

from __future__ import annotations

import contextlib
import importlib

LIBRARIES = (
    "pyarrow",
    "pyarrow.compute",
    "pyarrow.parquet",
    "pyiceberg.catalog.sql",
    "pyiceberg.table",
    "duckdb",
    "dagster_duckdb",
    "s3fs",
)


def import_libraries() -> None:
    """Import `LIBRARIES` (one that is not installed is skipped: this only saves time)."""
    for name in LIBRARIES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
