"""The dagster.yaml of each deployment, rendered from one description: every block is written
once here and each deployment lists the blocks it uses, so the embedded, cluster and docker
instances cannot drift apart. `python -m marts_project.instance.config docker` prints the
docker stack's file (committed as docker/dagster.yaml: its test compares the two).

One vocabulary for PostgreSQL: the URL in MARTS_DAGSTER_PG_URL (cluster and docker alike).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import sys
from collections.abc import Iterator
from pathlib import Path

HEADER = "# Dagster instance of the {name} deployment, written by marts ({source}): do not edit."
SOURCE = "marts_project/instance/config.py"
# First lines of the files earlier versions of marts wrote: still theirs to rewrite on upgrade.
EARLIER_HEADERS = {
    "embedded": "# Dagster instance settings for the embedded deployment (copied into "
    "DAGSTER_HOME on first use).",
    "cluster": "# Dagster instance of the cluster deployment (written into DAGSTER_HOME by "
    "`marts cluster up`).",
}

ONE_RUN_AT_A_TIME = """\
# One run at a time: the SQLite run storage and the SQLite Iceberg catalog both take one writer.
concurrency:
  runs:
    max_concurrent_runs: 1
"""
POSTGRES = """\
# Run, event and schedule storage on PostgreSQL, which takes concurrent writers. The event log
# remembers which of its tables exist instead of opening a connection to ask before storing
# each materialization (marts_project/instance/postgres_event_log.py says why).
run_storage:
  module: dagster_postgres.run_storage
  class: PostgresRunStorage
  config:
    postgres_url:
      env: MARTS_DAGSTER_PG_URL
event_log_storage:
  module: marts_project.instance.postgres_event_log
  class: TableAwarePostgresEventLogStorage
  config:
    postgres_url:
      env: MARTS_DAGSTER_PG_URL
schedule_storage:
  module: dagster_postgres.schedule_storage
  class: PostgresScheduleStorage
  config:
    postgres_url:
      env: MARTS_DAGSTER_PG_URL
"""
INSTANCE_CLASS = """\
# Records a run's failure in the order that keeps a crashed run's retry from being lost
# (marts_project/instance/marts_instance.py says why).
instance_class:
  module: marts_project.instance.marts_instance
  class: MartsInstance
"""
QUEUED_FROM_ENV = """\
# Runs queue and up to MARTS_MAX_CONCURRENT_RUNS run at once (`marts cluster up --max-runs`).
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs:
      env: MARTS_MAX_CONCURRENT_RUNS
    dequeue_interval_seconds: 1
"""
QUEUED_FOUR = """\
# Runs queue and up to four run at once.
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 4
"""
LOCAL_LAUNCHER = """\
# Run workers start on the daemon's host, so a run whose worker process dies (killed, OOM,
# reboot) is noticed by run monitoring through LocalRunLauncher's worker health check.
run_launcher:
  module: marts_project.instance.run_launcher
  class: LocalRunLauncher
run_monitoring:
  enabled: true
  poll_interval_seconds: 10
"""
CELERY_LAUNCHER = """\
# Each run is a task on the cluster's Celery queue, run by a worker in a run worker forked
# from its own run host (marts_project/instance/celery_task.py says why runs, not steps). The
# workers run on the daemon's host, so run monitoring notices a run whose worker died.
run_launcher:
  module: marts_project.instance.celery_task
  class: CeleryRunLauncher
run_monitoring:
  enabled: true
  poll_interval_seconds: 10
"""
REMOTE_MONITORING = """\
# Run workers start on the code server (Dagster's default launcher, over gRPC), in another
# container than the daemon, which cannot see their processes: a run whose worker died is
# failed after max_runtime_seconds instead, then retried.
run_monitoring:
  enabled: true
  max_runtime_seconds: 14400
"""
RETRIES = """\
# A run that crashed is re-executed from its failure; a failed audit or check fails again.
run_retries:
  enabled: true
  max_retries: 2
  retry_on_asset_or_op_failure: false
telemetry:
  enabled: false
"""
POOLED_EVENT_LOG = """\
# Every run's events in one SQLite database (WAL mode) through a connection pool, instead of
# Dagster's default of a file per run plus an index and a new connection per write: about 3x
# cheaper per event (marts_project/instance/event_log.py says why and what it relies on). The
# folder is this instance's own: rewritten when a data folder is copied or moved.
event_log_storage:
  module: marts_project.instance.event_log
  class: PooledSqliteEventLogStorage
  config:
    base_dir: "{home}/history/events"
"""
TERMINAL_OUTPUT = """\
# A step's stdout and stderr stay on the terminal of the process running it (the command's, or
# `dagster dev`'s for the runs it launches) instead of being copied into files for the UI: the
# copy took a tail and a watcher process per stream and run, whose tracebacks were all a Ctrl-C
# printed. The UI keeps every step's events, logs and errors (the cluster keeps the copies).
compute_logs:
  module: dagster.core.storage.noop_compute_log_manager
  class: NoOpComputeLogManager
"""

DEPLOYMENTS: dict[str, tuple[str, ...]] = {
    "embedded": (
        ONE_RUN_AT_A_TIME,
        INSTANCE_CLASS,
        LOCAL_LAUNCHER,
        RETRIES,
        POOLED_EVENT_LOG,
        TERMINAL_OUTPUT,
    ),
    "cluster": (POSTGRES, INSTANCE_CLASS, QUEUED_FROM_ENV, CELERY_LAUNCHER, RETRIES),
    "docker": (POSTGRES, INSTANCE_CLASS, QUEUED_FOUR, REMOTE_MONITORING, RETRIES),
}


class ForeignInstanceError(RuntimeError):
    """A dagster.yaml that marts did not write: another deployment's instance."""


def render(deployment: str, home: Path | None = None) -> str:
    """The deployment's dagster.yaml; `home` fills in the instance folder where a block has
    one (as a double-quoted YAML string)."""
    text = HEADER.format(name=deployment, source=SOURCE) + "\n"
    text += "".join(DEPLOYMENTS[deployment])
    if "{home}" in text:
        if home is None:
            raise ValueError(f"the {deployment} instance needs its home folder")
        text = text.replace("{home}", json.dumps(str(home.resolve()))[1:-1])
    return text


def written_for(text: str, deployment: str) -> bool:
    """Whether marts wrote this dagster.yaml text for `deployment` (this version or earlier)."""
    first = text.split("\n", 1)[0]
    return first in (HEADER.format(name=deployment, source=SOURCE), EARLIER_HEADERS.get(deployment))


def write(deployment: str, home: Path, *, others_allowed: bool) -> None:
    """Write the deployment's dagster.yaml into `home` unless it is there already: over one
    marts wrote (an upgrade's settings apply, a moved folder's paths follow it). One another
    deployment wrote is left as it is (`others_allowed`) or refused. Callers that may race
    (two commands on a fresh folder) hold `home`'s lock (`locked`)."""
    home.mkdir(parents=True, exist_ok=True)
    config, wanted = home / "dagster.yaml", render(deployment, home)
    current = config.read_text() if config.exists() else None
    if current is not None and not written_for(current, deployment):
        if others_allowed:
            return
        raise ForeignInstanceError(
            f"{config} is another deployment's instance (its run history would be left "
            "behind): point DAGSTER_HOME at a folder of its own"
        )
    if current != wanted:
        config.write_text(wanted)


@contextlib.contextmanager
def locked(home: Path) -> Iterator[None]:
    """`home` to this process alone while it writes its config and creates its storage."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".marts-init.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


if __name__ == "__main__":
    sys.stdout.write(render(sys.argv[1]))
