"""The automatic path converges to the right numbers: after late data from several sources over
several days, and after a failed refresh, every mart equals an independent recompute and the
serving database equals Iceberg; a failure is retried until repaired, never forgotten."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest

from marts_project.automation.loop import LoopState, converge
from marts_project.execution.runs import instance_for, refresh_days
from marts_project.marts import ALL_MARTS
from marts_project.observability.failures import failed_partitions
from marts_project.observability.freshness import partition_freshness
from marts_project.planning.planner import stale_partitions
from marts_project.settings import Settings
from marts_project.simulator import SimConfig, land
from marts_project_tests.conftest import Lakehouse, days
from marts_project_tests.expected import mismatches

SIM = SimConfig(seed=22, rows_per_day=60)  # a seed whose late files all change
DAYS = days(dt.date(2026, 8, 3), 5)
D = DAYS[-1]


def versions(lake: Lakehouse, mart) -> dict:
    """What freshness judges a served day by: the out-of-date partitions, the mart's records."""
    return {
        "stale": stale_partitions(lake.defs.assets, lake.warehouse, lake.serving(), lake.landing),
        "built": lake.warehouse.build_records(f"{mart.contract.domain}.{mart.contract.name}"),
    }


def close_of(day: dt.date, hours: float = 0) -> dt.datetime:
    """`hours` after the end of `day` (UTC)."""
    midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return midnight + dt.timedelta(hours=hours)


@pytest.fixture
def lake(tmp_path):
    instance = instance_for(tmp_path / "dagster_home")
    yield Lakehouse(Settings.local(tmp_path / "data"), instance)
    instance.dispose()


def deliver_late(lake: Lakehouse) -> None:
    """Refunds re-exported for two past days and payments added to a third (as sources do)."""
    before = {
        (s, d): lake.landing.read_bytes(s, d)
        for s, d in [("psp_refunds", DAYS[0]), ("psp_refunds", DAYS[1]), ("psp_payments", D)]
    }
    land(lake.landing, DAYS[:2], close_of(D, 24 * 20), SIM, sources=["psp_refunds"])
    land(lake.landing, [D], close_of(D, 24 * 20), SIM, sources=["psp_payments"])
    changed = [key for key, old in before.items() if lake.landing.read_bytes(*key) != old]
    assert len(changed) == 3, f"the simulator did not restate every file: {changed}"


def built(lake: Lakehouse) -> LoopState:
    """The landed days built by `marts backfill`, and the loop's cursors as a daemon would
    keep them afterwards (every file seen)."""
    land(lake.landing, DAYS, close_of(D, 1), SIM)
    assert all(o.success for o in refresh_days(lake.defs, lake.instance, DAYS[0], D))
    return LoopState(sensor_cursor=json.dumps(lake.landing.fingerprints()))


def test_late_data_from_two_sources_over_three_days_reaches_every_mart_through_sync(lake, tmp_path):
    state = converge(lake.defs, lake.instance, built(lake))
    assert state.outcomes == []  # nothing to do until late data arrives
    deliver_late(lake)

    converge(lake.defs, lake.instance, state)

    assert all(o.success for o in state.outcomes)
    assert failed_partitions(lake.defs, lake.instance) == {}
    assert mismatches(lake, DAYS, tmp_path / "expected") == {}


def hold_serving_lock(path) -> subprocess.Popen:
    """Another process (an analyst's session) holding the serving database open for writing."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
            "print('open', flush=True); time.sleep(600)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "open"
    return holder


def test_a_refresh_that_failed_is_reported_then_retried_until_serving_matches(
    lake, tmp_path, monkeypatch
):
    monkeypatch.setattr("marts_project.resources.serving.LOCK_RETRIES", 2)
    state = converge(lake.defs, lake.instance, built(lake), now=close_of(D, 2))
    deliver_late(lake)

    # the operations database, where finance grants fin_revenue_daily_fact: finance's own copy
    # is refreshed, the granted copy is not, and the day is not fresh until both are
    holder = hold_serving_lock(lake.serving().path("operations"))
    try:
        converge(lake.defs, lake.instance, state, now=close_of(D, 3.02))
    finally:
        holder.kill()
        holder.wait()

    assert any(not o.success for o in state.outcomes)
    failed = failed_partitions(lake.defs, lake.instance)
    assert failed, "a failed serving refresh must be remembered"
    fact = next(m for m in ALL_MARTS if m.contract.name == "fin_revenue_daily_fact")
    statuses = {
        p.day: p.status
        for p in partition_freshness(
            fact, lake.serving(), lake.landing, close_of(D, 3), 5, **versions(lake, fact)
        )
    }
    assert statuses[DAYS[0]] != "fresh", "what is served is older than what landed"

    ran = len(state.outcomes)
    converge(lake.defs, lake.instance, state, now=close_of(D, 3.1))  # before the retry time
    assert len(state.outcomes) == ran, "retries wait for their retry time"

    converge(lake.defs, lake.instance, state, now=close_of(D, 3.3))  # past the 03:15 retry tick

    assert all(o.success for o in state.outcomes[ran:])
    assert failed_partitions(lake.defs, lake.instance) == {}
    assert mismatches(lake, DAYS, tmp_path / "expected") == {}
    statuses = {
        p.day: p.status
        for p in partition_freshness(
            fact, lake.serving(), lake.landing, close_of(D, 4), 5, **versions(lake, fact)
        )
    }
    assert set(statuses.values()) == {"fresh"}
