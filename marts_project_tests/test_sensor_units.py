"""The landing sensor on its own (unit tier): built with `build_sensors`, evaluated with
`build_sensor_context` over a landing folder in tmp_path; no Definitions, no warehouse, no run."""

from __future__ import annotations

import datetime as dt

from dagster import SkipReason, build_sensor_context

from marts_project.automation.sensors import build_sensors
from marts_project.resources.landing import LandingZone

DAY = dt.date(2026, 10, 5)


def _tick(landing: LandingZone, cursor: str | None):
    sensor = next(s for s in build_sensors() if s.name == "landing_sensor")
    with build_sensor_context(cursor=cursor, resources={"landing": landing}) as context:
        return sensor(context)


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
    landing = LandingZone(root=str(tmp_path))
    for day in (DAY, DAY + dt.timedelta(days=1)):
        landing.write_bytes("wms_inventory", day, b"snapshot_date\n")
        landing.write_bytes("wms_warehouses", day, b"snapshot_date\n")
    first = _tick(landing, None)
    both = ("raw_wms_inventory", "raw_wms_warehouses")
    assert _requested(first) == {(both, str(DAY), str(DAY + dt.timedelta(days=1)))}

    assert isinstance(_tick(landing, first.cursor), SkipReason)  # nothing changed: no run

    landing.write_bytes("wms_inventory", DAY, b"snapshot_date\n\n")  # a past day re-exported
    again = _tick(landing, first.cursor)
    assert _requested(again) == {(("raw_wms_inventory",), str(DAY), str(DAY))}


def test_a_file_that_is_not_a_known_source_or_day_requests_nothing(tmp_path):
    landing = LandingZone(root=str(tmp_path))
    (tmp_path / "unknown_source").mkdir()
    (tmp_path / "unknown_source" / f"{DAY}.csv").write_bytes(b"x\n")
    (tmp_path / "wms_inventory").mkdir()
    (tmp_path / "wms_inventory" / "yesterday.csv").write_bytes(b"x\n")
    result = _tick(landing, None)
    assert not result.run_requests
