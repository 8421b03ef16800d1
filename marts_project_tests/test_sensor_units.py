"""The landing sensor on its own: evaluated with `build_sensor_context` over a landing folder
and an empty lake in tmp_path; no run is executed."""

from __future__ import annotations

import datetime as dt

import pytest
from dagster import DagsterInstance, build_sensor_context

from marts_project.definitions import build_definitions
from marts_project.resources.landing import LandingZone
from marts_project.settings import Settings

pytestmark = pytest.mark.quick  # the unit tier: `pytest -m quick`

DAY = dt.date(2026, 10, 5)


def _tick(tmp_path, cursor: str | None):
    defs = build_definitions(Settings.local(tmp_path / "data"))
    sensor = defs.resolve_sensor_def("landing_sensor")
    resources = {**defs.resources, "landing": LandingZone(root=str(tmp_path / "landing"))}
    with (
        DagsterInstance.ephemeral() as instance,
        build_sensor_context(
            instance=instance, cursor=cursor, definitions=defs, resources=resources
        ) as context,
    ):
        return sensor.evaluate_tick(context)


def _requested(result) -> set[tuple[tuple[str, ...], str, str]]:
    return {
        (
            tuple(sorted(key.path[-1] for key in run.asset_selection)),
            run.tags["dagster/asset_partition_range_start"],
            run.tags["dagster/asset_partition_range_end"],
        )
        for run in result.run_requests
    }


def test_new_files_are_requested_by_day_grouped_by_source_then_only_what_changes(tmp_path):
    landing = LandingZone(root=str(tmp_path / "landing"))
    for day in (DAY, DAY + dt.timedelta(days=1)):
        landing.write_bytes("wms_inventory", day, b"snapshot_date\n")
        landing.write_bytes("wms_warehouses", day, b"snapshot_date\n")
    first = _tick(tmp_path, None)
    both = ("raw_wms_inventory", "raw_wms_warehouses")
    assert _requested(first) == {(both, str(DAY), str(DAY + dt.timedelta(days=1)))}

    # requested and not built yet (running, or failed and left to automation's retry): not
    # requested again
    assert not _tick(tmp_path, first.cursor).run_requests

    landing.write_bytes("wms_inventory", DAY, b"snapshot_date\n\n")  # a past day re-exported
    again = _tick(tmp_path, first.cursor)
    assert _requested(again) == {(("raw_wms_inventory",), str(DAY), str(DAY))}


def test_a_file_that_is_not_a_known_source_or_day_requests_nothing(tmp_path):
    root = tmp_path / "landing"
    (root / "unknown_source").mkdir(parents=True)
    (root / "unknown_source" / f"{DAY}.csv").write_bytes(b"x\n")
    (root / "wms_inventory").mkdir()
    (root / "wms_inventory" / "yesterday.csv").write_bytes(b"x\n")
    result = _tick(tmp_path, None)
    assert not result.run_requests
