"""Marts keep themselves fresh: the landing sensor and automation conditions, ticked through
Dagster's own evaluation APIs on a persistent instance, refresh exactly the late partitions."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from dagster import AssetCheckKey, AssetKey, DagsterEventType, build_schedule_context
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from marts_project.automation.loop import LoopState, converge
from marts_project.automation.schedules import (
    monthly_catchup_schedule,
    nightly_reprocess_schedule,
)
from marts_project.execution.runs import instance_for
from marts_project.settings import Settings
from marts_project.simulator import SimConfig, land
from marts_project_tests.conftest import Lakehouse, days
from marts_project_tests.expected import EXPECTED, differences, landing_connection

SIM = SimConfig(seed=3, rows_per_day=80)
FIRST = dt.date(2026, 9, 21)
DAYS = days(FIRST, 10)
D = DAYS[-1]


def _after_close(day: dt.date, hours: int) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC) + (
        dt.timedelta(hours=hours)
    )


@pytest.fixture
def lake(tmp_path):
    instance = instance_for(tmp_path / "dagster_home")
    yield Lakehouse(Settings.local(tmp_path / "data"), instance)
    instance.dispose()


def materialized_since(lake, since: float) -> dict[str, set[str | None]]:
    """Asset -> partitions materialized by runs started after `since` (from the run records)."""
    found: dict[str, set[str | None]] = {}
    for run in lake.instance.get_runs():
        stats = lake.instance.get_run_stats(run.run_id)
        if (stats.start_time or 0) < since:
            continue
        for event in lake.instance.all_logs(
            run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
        ):
            materialization = event.dagster_event.step_materialization_data.materialization
            found.setdefault(materialization.asset_key.to_user_string(), set()).add(
                materialization.partition
            )
    return found


def test_late_data_refreshes_exactly_the_late_partitions_end_to_end(lake, tmp_path):
    land(lake.landing, DAYS, _after_close(D, 1), SIM)
    state = converge(lake.defs, lake.instance)
    assert all(o.success for o in state.outcomes)
    built = materialized_since(lake, 0)
    assert built["marketing/mkt_campaign_performance_fact"] == {d.isoformat() for d in DAYS}
    assert built["finance/fin_pnl_monthly_agg"] == {"2026-09-01"}

    restated, late_shipment = D - dt.timedelta(days=3), D - dt.timedelta(days=5)
    before = lake.landing.read_bytes("wms_shipments", late_shipment)
    land(lake.landing, [restated], _after_close(D, 200), SIM, sources=["mkt_ad_stats"])
    land(lake.landing, [late_shipment], _after_close(D, 100), SIM, sources=["wms_shipments"])
    assert lake.landing.read_bytes("wms_shipments", late_shipment).count(b"\n") > before.count(
        b"\n"
    )
    since = time.time()
    started = time.monotonic()

    converge(lake.defs, lake.instance, state)
    converged_in = time.monotonic() - started

    refreshed = materialized_since(lake, since)
    # The restated file may also hold late rows of the 3 days before it (ad stats' late_days):
    # those days are refreshed too; shipments allow none.
    ad_days = {(restated - dt.timedelta(days=n)).isoformat() for n in range(4)}
    assert refreshed.pop("raw/raw_mkt_ad_stats") == ad_days
    assert refreshed.pop("raw/raw_wms_shipments") == {late_shipment.isoformat()}
    assert not any(k.startswith("raw/") for k in refreshed), refreshed  # no other source re-read
    weeks = {"2026-09-21", "2026-09-28"} & {
        (d - dt.timedelta(days=d.weekday())).isoformat()
        for d in (*map(dt.date.fromisoformat, ad_days), late_shipment)
    }
    for key, partitions in refreshed.items():
        if key.endswith("_agg"):
            expected = {"2026-09-01"} if "monthly" in key else weeks
            assert partitions <= expected | {"2026-10-01"}, (key, partitions)
        elif key.endswith(("_dim", "_v")):
            assert partitions == {None}, key
        else:
            assert partitions <= ad_days | {late_shipment.isoformat()}, (
                key,
                partitions,
            )
    assert refreshed["marketing/mkt_campaign_performance_fact"] == ad_days
    assert refreshed["operations/ops_fulfillment_sla_fact"] == {late_shipment.isoformat()}

    con = landing_connection(lake.landing, DAYS, tmp_path / "expected")
    for identifier, (columns, sql) in EXPECTED.items():
        actual = (
            lake.serving().read(identifier)
            if identifier.endswith("_v")
            else lake.warehouse.read(identifier)
        )
        assert differences(con, actual, columns, sql) == [], identifier
    print(f"late data converged in {converged_in:.1f}s")


def test_nothing_is_requested_twice_for_unchanged_files(lake):
    land(lake.landing, DAYS[:2], _after_close(DAYS[1], 1), SIM)
    state = converge(lake.defs, lake.instance)
    runs = len(lake.instance.get_runs())
    converge(lake.defs, lake.instance, state)
    fresh_state = LoopState(sensor_cursor=state.sensor_cursor)  # e.g. after a daemon restart
    converge(lake.defs, lake.instance, fresh_state)
    assert len(lake.instance.get_runs()) == runs


def test_an_upstream_blocking_check_failure_stops_automation_downstream(lake):
    land(lake.landing, DAYS[:2], _after_close(DAYS[1], 1), SIM)
    state = converge(lake.defs, lake.instance)
    day = DAYS[1]
    good = lake.landing.read_bytes("mkt_ad_stats", day)
    broken = good + b"".join(b"garbage,row\n" for _ in range(good.count(b"\n")))
    lake.landing.write_bytes("mkt_ad_stats", day, broken)
    since = time.time()

    converge(lake.defs, lake.instance, state)

    refreshed = materialized_since(lake, since)
    both = {DAYS[0].isoformat(), day.isoformat()}  # and the day before: its late rows
    assert refreshed == {"raw/raw_mkt_ad_stats": both}  # nothing downstream
    key = AssetCheckKey(AssetKey(["raw", "raw_mkt_ad_stats"]), "quarantine_share")
    record = lake.instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    assert record.status == AssetCheckExecutionRecordStatus.FAILED

    lake.landing.write_bytes("mkt_ad_stats", day, good)  # the source re-delivers a clean file
    since = time.time()
    converge(lake.defs, lake.instance, state)
    refreshed = materialized_since(lake, since)
    assert refreshed["marketing/mkt_campaign_performance_fact"] == both


@pytest.mark.parametrize(
    ("schedule", "days_back", "runs"),
    [(nightly_reprocess_schedule, 7, 1), (monthly_catchup_schedule, 90, 13)],
)
def test_reprocessing_schedules_cover_their_days_in_chunked_range_runs(schedule, days_back, runs):
    now = dt.datetime(2026, 11, 21, 3, 0, tzinfo=dt.UTC)
    requests = schedule(build_schedule_context(scheduled_execution_time=now))
    last = dt.date(2026, 11, 20)
    ranges = [
        (
            dt.date.fromisoformat(r.tags["dagster/asset_partition_range_start"]),
            dt.date.fromisoformat(r.tags["dagster/asset_partition_range_end"]),
        )
        for r in requests
    ]
    assert len(ranges) == runs
    assert ranges[0][0] == last - dt.timedelta(days=days_back - 1) and ranges[-1][1] == last
    assert all((end - start).days < 7 for start, end in ranges)  # at most 7 days a run
    covered = [
        start + dt.timedelta(days=i) for start, end in ranges for i in range((end - start).days + 1)
    ]
    assert covered == [last - dt.timedelta(days=n) for n in reversed(range(days_back))]
    assert len({r.run_key for r in requests}) == runs
