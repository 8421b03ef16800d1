"""The real daemon path: `dagster-daemon` on a temp DAGSTER_HOME picks up a freshly landed day
and materializes it all the way to the marts with no manual call."""

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

from dagster import AssetKey, DagsterEventType, DagsterRun, DagsterRunStatus, RunsFilter

from marts_project.automation.run_launcher import LocalRunLauncher
from marts_project.definitions import build_definitions, open_resource
from marts_project.partitions import daily_partitions
from marts_project.runs import instance_for
from marts_project.settings import REPO_ROOT, Settings
from marts_project.simulator import SimConfig, land
from marts_project_tests.conftest import FINAL, free_port
from marts_project_tests.expected import expected_campaign_performance, mart_rows

TIMEOUT_SECONDS = 420
DAEMON = [str(Path(sys.executable).with_name("dagster-daemon"))]


def test_daemon_materializes_a_freshly_landed_day_by_itself(tmp_path):
    home, data = tmp_path / "dagster_home", tmp_path / "data"
    instance = instance_for(home)
    settings = Settings.local(data)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MARTS_DATA_DIR": str(data),
        "MARTS_SENSOR_INTERVAL_SECONDS": "5",
    }
    log = tmp_path / "daemon.log"
    daemon = _start(DAEMON + ["run", "-w", "workspace.yaml"], env, log)
    try:
        day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
        land(
            open_resource(settings, "landing"),
            [day],
            dt.datetime.now(dt.UTC),
            SimConfig(seed=2, rows_per_day=30),
        )
        started = time.monotonic()
        mart = AssetKey(["marketing", "mkt_campaign_performance_fact"])
        while time.monotonic() - started < TIMEOUT_SECONDS:
            event = instance.get_latest_materialization_event(mart)
            if event and event.asset_materialization.partition == day.isoformat():
                break
            assert daemon.poll() is None, log.read_text()[-3000:]
            time.sleep(2)
        else:
            raise AssertionError(
                f"mart not materialized in {TIMEOUT_SECONDS}s:\n" + log.read_text()[-3000:]
            )
        elapsed = time.monotonic() - started
        rows = open_resource(settings, "warehouse").read("marketing.mkt_campaign_performance_fact")
        assert rows.num_rows > 0
        triggers = {r.tags.get("marts/trigger", "automation") for r in instance.get_runs()}
        assert "landing_sensor" in triggers
        print(f"daemon converged in {elapsed:.0f}s")
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)


BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""


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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(1)
    raise AssertionError(f"{what} not reached in {timeout:.0f}s:\n{log.read_text()[-4000:]}")


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
    # Exactly one materialization per asset partition across the backfill's runs: the retry
    # re-ran only what the killed run had not finished.
    seen: dict[tuple[str, str], int] = {}
    for run in runs:
        for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
            m = entry.asset_materialization
            seen[(m.asset_key.to_user_string(), m.partition)] = (
                seen.get((m.asset_key.to_user_string(), m.partition), 0) + 1
            )
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
