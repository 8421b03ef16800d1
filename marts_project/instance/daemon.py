"""`marts-daemon`: Dagster's own daemon (`dagster-daemon`, same commands and options) whose
asset-backfill loop wakes every BACKFILL_TICK_SECONDS instead of every 30 s, and whose
instance keeps its PostgreSQL connections (`MartsInstance.long_lived`, which says why).

An asset backfill requests a layer's runs only on the daemon tick after the layer it reads has
finished (days, then the weeks and months holding them, then the unpartitioned marts), and
it is marked finished on the tick after its last run. With Dagster's fixed 30 s sleep a
backfill of a few minutes of work waited up to two minutes between its layers: dagster#11649
("deep asset backfills can spend too much time in daemon sleep", open; the proposed fix,
dagster#11860, is unmerged). With no backfill in progress an iteration is one query for the
backfills to work on; with one in progress, evaluating it every 2 s is the point. Dagster's
loop sleeps what remains of the tick, so an evaluation longer than 2 s (a backfill of
thousands of partitions) is followed by the next at once, on the daemon's backfill thread.

When its instance launches runs from a run host (`LocalRunLauncher`; the cluster's runs go to
Celery workers instead), it starts a spare host first, so the first run after the daemon
starts does not wait for the host's imports (`run_host.start_spare`).
"""

from __future__ import annotations

import sys

# Private: the instance's configuration as dagster.yaml says it, read without opening storages.
from dagster._core.instance.ref import InstanceRef

# Private: the sleep of the backfill loop is this module constant, read when the loop starts
# (`dagster._daemon.backfill.execute_backfill_iteration_loop`); neither dagster.yaml nor any
# public API sets it. The only other reader is the asset daemon's interval when no automation
# sensor exists, and every deployment of marts has automation sensors.
from dagster._daemon import controller

# Private: the `dagster-daemon` command itself (its console script's target); running it in
# this process is what lets the constant above apply.
from dagster._daemon.cli import main as dagster_daemon

from marts_project.instance import run_host, run_launcher
from marts_project.instance.marts_instance import MartsInstance
from marts_project.settings import Settings

BACKFILL_TICK_SECONDS = 2


def main() -> int:
    """Run `dagster-daemon` with the shorter backfill tick (the same arguments)."""
    controller.DEFAULT_DAEMON_INTERVAL_SECONDS = BACKFILL_TICK_SECONDS
    MartsInstance.long_lived = True
    if sys.argv[1:2] == ["run"] and _launches_from_a_run_host():
        run_host.start_spare()
    sys.argv[0] = "marts-daemon"
    return dagster_daemon()


def _launches_from_a_run_host() -> bool:
    """Whether this daemon's instance (`DAGSTER_HOME`) launches runs with `LocalRunLauncher`."""
    home = Settings.from_env().dagster_home
    if home is None or not (home / "dagster.yaml").exists():
        return False
    data = InstanceRef.from_dir(str(home)).run_launcher_data
    return data is not None and (data.module_name, data.class_name) == (
        run_launcher.__name__,
        run_launcher.LocalRunLauncher.__name__,
    )


if __name__ == "__main__":
    sys.exit(main())
