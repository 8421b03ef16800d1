"""`marts backfill --workers N`: the daily chunks of a range run side by side in worker
processes on the embedded deployment, and the lake ends exactly as one serial build leaves it."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from pathlib import Path

from dagster import DagsterInstance

from marts_project.core.partitions import daily_partitions
from marts_project.execution.runs import instance_for, refresh_days
from marts_project.settings import Settings
from marts_project_tests.conftest import DAY, Lakehouse, comparable_rows, days

WINDOW = days(DAY, 6)


def test_chunks_run_side_by_side_and_the_lake_equals_a_serial_build(tmp_path: Path):
    settings = Settings.local(tmp_path / "parallel")
    instance = instance_for(settings.data_dir / "dagster_home")  # the one the CLI opens
    parallel = Lakehouse(settings, instance)
    parallel.seed(WINDOW[0], len(WINDOW))
    env = {**os.environ, "MARTS_DATA_DIR": str(settings.data_dir), "MARTS_SENSORS": "off"}
    env.pop("DAGSTER_HOME", None)
    marts = str(Path(sys.executable).with_name("marts"))
    argv = ["backfill", "--start", str(WINDOW[0]), "--end", str(WINDOW[-1])]
    done = subprocess.run(
        [marts, *argv, "--chunk-days", "2", "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 at a time" in done.stdout

    daily = [r for r in instance.get_run_records() if r.dagster_run.job_name == "daily_assets_job"]
    assert len(daily) == 3  # six days in chunks of two
    spans = sorted((r.start_time, r.end_time) for r in daily)
    overlapping = [b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False)]
    assert any(overlapping), f"no two chunks ran at once: {spans}"
    for spec in parallel.defs.resolve_all_asset_specs():
        if spec.partitions_def != daily_partitions:
            continue
        built = collections.Counter(
            r.partition_key for r in instance.fetch_materializations(spec.key, limit=1000).records
        )
        assert built == {d.isoformat(): 1 for d in WINDOW}, spec.key

    with DagsterInstance.ephemeral() as serial_instance:
        serial = Lakehouse(Settings.local(tmp_path / "serial"), serial_instance)
        serial.seed(WINDOW[0], len(WINDOW))
        outcomes = refresh_days(serial.defs, serial_instance, WINDOW[0], WINDOW[-1])
        assert all(o.success for o in outcomes), outcomes
        identifiers = sorted(serial.warehouse.table_identifiers())
        assert identifiers == sorted(parallel.warehouse.table_identifiers())
        for identifier in identifiers:
            assert comparable_rows(parallel.warehouse, identifier, settings.landing) == (
                comparable_rows(serial.warehouse, identifier, serial.settings.landing)
            ), identifier
