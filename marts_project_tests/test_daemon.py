"""The real daemon path: `dagster-daemon` on a temp DAGSTER_HOME picks up a freshly landed day
and materializes it all the way to the marts with no manual call."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dagster import AssetKey

from marts_project.definitions import open_resource
from marts_project.runs import instance_for
from marts_project.settings import REPO_ROOT, Settings
from marts_project.simulator import SimConfig, land

TIMEOUT_SECONDS = 420


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
    log = (tmp_path / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
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
            assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
            time.sleep(2)
        else:
            raise AssertionError(
                f"mart not materialized in {TIMEOUT_SECONDS}s:\n"
                + (tmp_path / "daemon.log").read_text()[-3000:]
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
        log.close()
