"""The real daemon path: `marts-daemon` (Dagster's daemon) on a temp DAGSTER_HOME picks up a
freshly landed day and materializes it all the way to the marts with no manual call."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from dagster import DagsterEventType, DagsterRun, DagsterRunStatus, RunsFilter

from marts_project.core.partitions import daily_partitions
from marts_project.definitions import build_definitions
from marts_project.deployment import open_resource
from marts_project.execution.runs import instance_for, refresh_days
from marts_project.instance.run_launcher import LocalRunLauncher
from marts_project.settings import REPO_ROOT, Settings
from marts_project.simulator import SimConfig, land
from marts_project_tests.conftest import FINAL, Lakehouse, free_port, wait_for
from marts_project_tests.expected import expected_campaign_performance, mart_rows, mismatches
from marts_project_tests.test_convergence import DAYS, SIM, D, close_of, deliver_late

TIMEOUT_SECONDS = 420
DAEMON = [str(Path(sys.executable).with_name("marts-daemon"))]
# Every status a run passes through before it ends: a run being launched (STARTING) is not done.
IN_FLIGHT = [
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def test_daemon_converges_after_late_data_from_two_sources_over_three_days(tmp_path):
    """The daemon alone (landing sensor + automation sensor, several runs per tick) carries
    refunds re-exported for two past days and payments added to a third from the landing zone
    to every mart: each mart ends equal to an independent recompute and the serving database
    equal to Iceberg. The days themselves were built by a backfill first: the daemon, started
    afterwards with no cursor of its own, rebuilds none of them (the lake records what each
    partition was built from)."""
    home, data = tmp_path / "dagster_home", tmp_path / "data"
    lake = Lakehouse(Settings.local(data), instance_for(home))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MARTS_DATA_DIR": str(data),
        "MARTS_SENSOR_INTERVAL_SECONDS": "5",
    }
    land(lake.landing, DAYS, close_of(D, 1), SIM)
    assert all(o.success for o in refresh_days(lake.defs, lake.instance, DAYS[0], D))
    backfilled = lake.instance.get_runs_count()
    log = tmp_path / "daemon.log"
    daemon = _start(DAEMON + ["run", "-w", "workspace.yaml"], env, log)
    ticked = log_ticks(log)
    _wait("three sensor ticks", lambda: log_ticks(log) >= ticked + 3, TIMEOUT_SECONDS, log)
    assert lake.instance.get_runs_count() == backfilled, "the daemon rebuilt what was built"

    quiet = {"runs": -1, "since": time.monotonic()}

    def converged() -> bool:
        """Right numbers, and no run in flight or new for three sensor intervals since the last
        one ended: the automation sensor's next tick may still request what the last run made
        stale (a month whose run finished before the run of its days)."""
        assert daemon.poll() is None, log.read_text()[-3000:]
        count = lake.instance.get_runs_count()
        if count != quiet["runs"] or lake.instance.get_runs(RunsFilter(statuses=IN_FLIGHT)):
            quiet.update(runs=count, since=time.monotonic())
            return False
        if time.monotonic() - quiet["since"] < 15:
            return False
        try:
            return mismatches(lake, DAYS, tmp_path / "expected") == {}
        except Exception:  # the serving file locked by a writer
            return False

    try:
        started = time.monotonic()
        deliver_late(lake)
        _wait("late data carried to every mart", converged, TIMEOUT_SECONDS, log)
        print(f"daemon: late data carried to every mart in {time.monotonic() - started:.0f}s")
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
    runs = lake.instance.get_runs()
    assert all(r.status == DagsterRunStatus.SUCCESS for r in runs), [
        (r.run_id, r.status) for r in runs if r.status != DagsterRunStatus.SUCCESS
    ]
    triggered = {r.tags.get("marts/trigger") for r in runs}
    assert "landing_sensor" in triggered and any(
        r.tags.get("dagster/sensor_name") == "automation_sensor" or r.tags.get("dagster/backfill")
        for r in runs
    )
    lake.instance.dispose()


BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""


def log_ticks(log: Path) -> int:
    """How many landing-sensor ticks the daemon has logged so far."""
    text = log.read_text() if log.exists() else ""
    return text.count("Checking for new runs for sensor: landing_sensor")


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        cwd=REPO_ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: code servers and run workers too
    )


def _graphql(base: str, query: str, variables: dict) -> dict:
    request = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _wait(what: str, condition, timeout: float, log: Path):
    return wait_for(what, condition, timeout, every=1, log=log)


def test_a_backfill_resumes_after_the_daemon_is_killed_mid_run(tmp_path):
    """SIGKILL the daemon, its code server and the backfill's run worker mid-run; on restart,
    run monitoring sees the dead worker, the run is retried from the failure by policy, and
    every partition ends up materialized exactly once, equal to an independent recompute."""
    home, data, log = tmp_path / "dagster_home", tmp_path / "data", tmp_path / "dagster.log"
    instance = instance_for(home)
    settings = Settings.local(data)
    first = dt.date(2026, 10, 5)
    backfill_days = [first + dt.timedelta(days=i) for i in range(4)]
    land(open_resource(settings, "landing"), backfill_days, FINAL, SimConfig(rows_per_day=150))
    env = {**os.environ, "DAGSTER_HOME": str(home), "MARTS_DATA_DIR": str(data)}
    env["MARTS_SENSORS"] = "off"  # only the backfill runs here
    bin_dir = Path(sys.executable).parent
    port = free_port()
    webserver = _start(
        [str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1"]
        + ["-p", str(port)],
        env,
        log,
    )
    daemon_argv = DAEMON + ["run", "-w", "workspace.yaml"]
    daemon = _start(daemon_argv, env, log)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait("webserver up", lambda: _reachable(f"{base}/server_info"), 120, log)
        defs = build_definitions(settings)
        daily = [
            {"path": list(key.path)}
            for key, spec in ((s.key, s) for s in defs.resolve_all_asset_specs())
            if spec.partitions_def is daily_partitions
        ]
        launched = _graphql(
            base,
            BACKFILL,
            {
                "params": {
                    "partitionNames": [d.isoformat() for d in backfill_days],
                    "assetSelection": daily,
                }
            },
        )["data"]["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]

        def backfill_runs() -> list[DagsterRun]:
            return instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill_id}))

        def mid_run() -> DagsterRun | None:
            for run in backfill_runs():
                done = instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_SUCCESS)
                if run.status == DagsterRunStatus.STARTED and len(done) >= 3:
                    return run
            return None

        killed = _wait("a backfill run part-way through", mid_run, 240, log)
        worker = LocalRunLauncher.worker_pid(instance, killed.run_id)
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)  # if it was not in the daemon's process group
        time.sleep(1)
        assert instance.get_run_by_id(killed.run_id).status == DagsterRunStatus.STARTED

        daemon = _start(daemon_argv, env, log)
        finished = _wait(
            "backfill completed",
            lambda: (
                instance.get_backfill(backfill_id).status.value.startswith("COMPLETED")
                and instance.get_backfill(backfill_id)
            ),
            360,
            log,
        )
        assert finished.status.value == "COMPLETED_SUCCESS", finished.status
    finally:
        for process in (daemon, webserver):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)

    runs = backfill_runs()
    assert instance.get_run_by_id(killed.run_id).status == DagsterRunStatus.FAILURE
    retries = [r for r in runs if r.tags.get("dagster/parent_run_id") == killed.run_id]
    assert len(retries) == 1 and retries[0].status == DagsterRunStatus.SUCCESS
    # Exactly one materialization per asset partition by a step that finished, across the
    # backfill's runs: the retry re-ran only what the killed run had not finished. (A step
    # killed while it was recording its events left some without a STEP_SUCCESS; the retry
    # ran that step again, rewriting the same days, which is idempotent.)
    seen: dict[tuple[str, str], int] = {}
    for run in runs:
        finished = {
            e.step_key for e in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_SUCCESS)
        }
        for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
            if entry.step_key not in finished:
                continue
            m = entry.asset_materialization
            key = (m.asset_key.to_user_string(), m.partition)
            seen[key] = seen.get(key, 0) + 1
    assert set(seen.values()) == {1}, {k: v for k, v in seen.items() if v != 1}
    assert len(seen) == len(daily) * len(backfill_days)
    expected = expected_campaign_performance(
        open_resource(settings, "landing"), backfill_days, tmp_path / "x"
    )
    mart = open_resource(settings, "warehouse").read("marketing.mkt_campaign_performance_fact")
    assert mart_rows(mart) == expected


def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:
        return False
