"""SLIs, SLOs and error budgets: exact values over histories with known outages, and the same
history read back from real runs (a failed run, a refused audit, quarantined rows)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from pathlib import Path

import pytest
from dagster import AssetCheckKey, AssetKey

from marts_project.core.contracts import Slo
from marts_project.core.partitions import DayWindow
from marts_project.definitions import build_definitions
from marts_project.execution.jobs import freshness_checks_job
from marts_project.execution.runs import materialize_days, run_job
from marts_project.marts import ALL_MARTS
from marts_project.marts.common import build_mart
from marts_project.observability.slo import Arrival, Failure, History, Refresh, Scope, measure
from marts_project.observability.slo_history import read_history, scope_of
from marts_project.simulator import land
from marts_project_tests.conftest import FINAL, SIM, Lakehouse, days

MART = next(m for m in ALL_MARTS if m.contract.name == "mkt_campaign_performance_fact")
HOUR = dt.timedelta(hours=1)
NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
WINDOW = 28 * 24  # hours in the SLO window
FIRST = dt.date(2026, 9, 25)  # a week of history before the window opens


def _closes(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)


def _landed(day: dt.date, at: dt.datetime, read: dt.timedelta | None = dt.timedelta()) -> Arrival:
    """A version of source `s`'s file of `day` written at `at`, read by a raw build `read`
    later (None: no build has read it)."""
    return Arrival("s", day, at, None if read is None else at + read)


def _scope(sla_hours: int = 30, **slo) -> Scope:
    """One source `s` without late rows; the objectives given (window 28 days)."""
    objectives = {"freshness": 0.95, "success_rate": 0.9, "conformance": 0.9, **slo}
    contract = MART.contract.model_copy(
        update={"freshness_sla_hours": sla_hours, "slo": Slo(**objectives)}
    )
    return Scope(contract, ("s",), {"s": 0})


def _healthy(until: dt.date = dt.date(2026, 10, 30), skip: tuple[dt.date, ...] = ()) -> History:
    """Every day's file lands an hour after the day closes and is served an hour later, each by
    its own run, from FIRST on."""
    history = History()
    day = FIRST
    while day <= until:
        if day not in skip:
            history.arrivals.append(_landed(day, _closes(day) + HOUR))
            history.refreshes.append(
                Refresh(
                    _closes(day) + 2 * HOUR, f"run-{day}", DayWindow(day, day + dt.timedelta(1))
                )
            )
        day += dt.timedelta(days=1)
    return history


def _one_day(day: dt.date) -> DayWindow:
    return DayWindow(day, day + dt.timedelta(days=1))


def test_a_healthy_history_meets_every_objective_with_the_budget_untouched():
    report = measure(_scope(latency_p95_hours=2), _healthy(), NOW)
    for name in ("freshness", "conformance", "success_rate"):
        assert report.indicator(name).value == 1.0
        assert report.indicator(name).budget_left == 1.0
    assert report.latency_median_hours == report.latency_p95_hours == 1.0
    assert report.indicator("latency").budget_left == 1.0
    assert report.incidents == () and report.out_of_budget == []


@pytest.mark.parametrize("hours", [6, 12, 40])
def test_an_outage_of_n_hours_costs_exactly_n_hours_of_freshness(hours):
    late_day = dt.date(2026, 10, 10)
    history = _healthy(skip=(late_day,))
    history.arrivals.append(_landed(late_day, _closes(late_day) + HOUR))
    served = _closes(late_day) + 30 * HOUR + hours * HOUR  # the SLA is 30 h after the close
    history.refreshes.append(Refresh(served, "run-late", _one_day(late_day)))
    report = measure(_scope(), history, NOW)
    freshness = report.indicator("freshness")
    assert freshness.value == pytest.approx(1 - hours / WINDOW, abs=1e-12)
    assert freshness.budget_left == pytest.approx(1 - (hours / WINDOW) / 0.05, abs=1e-12)
    assert freshness.met is (hours / WINDOW <= 0.05)
    (incident,) = report.incidents
    assert (incident.sli, incident.day, incident.cause) == ("freshness", late_day, "not refreshed")
    assert incident.end - incident.start == hours * HOUR
    assert report.latency_p95_hours == 1.0  # one slow arrival of 34 is under the 95th rank


def test_a_source_that_delivers_after_the_sla_is_a_late_source_incident():
    day = dt.date(2026, 10, 12)
    history = _healthy(skip=(day,))
    history.arrivals.append(_landed(day, _closes(day) + 40 * HOUR))
    history.refreshes.append(Refresh(_closes(day) + 41 * HOUR, "run-x", _one_day(day)))
    report = measure(_scope(), history, NOW)
    (incident,) = report.incidents
    assert incident.cause == "late source" and incident.end - incident.start == 11 * HOUR
    assert report.indicator("freshness").value == pytest.approx(1 - 11 / WINDOW, abs=1e-12)


def test_failed_runs_and_refused_audits_spend_success_rate_conformance_and_name_the_cause():
    failed_day, refused_day = dt.date(2026, 10, 14), dt.date(2026, 10, 20)
    history = _healthy(skip=(failed_day, refused_day))
    for day, refused, run in ((failed_day, False, "run-f"), (refused_day, True, "run-r")):
        history.arrivals.append(_landed(day, _closes(day) + HOUR))
        history.failures.append(Failure(_closes(day) + 2 * HOUR, run, _one_day(day), refused, "x"))
        history.refreshes.append(Refresh(_closes(day) + 35 * HOUR, f"{run}-retry", _one_day(day)))
    # one more write of another day, published with a failed non-blocking audit
    warned_day = dt.date(2026, 10, 22)
    history.refreshes.append(
        Refresh(_closes(warned_day) + 3 * HOUR, "run-warned", _one_day(warned_day), 1)
    )
    report = measure(_scope(), history, NOW)
    # in the window (from Oct 4 00:00): the runs of Oct 3 .. 30 but the two days that failed
    # (26), the failed and the refused run, their two retries, the warned run
    runs = 26 + 2 + 2 + 1
    assert report.indicator("success_rate").value == pytest.approx(1 - 2 / runs)
    writes = runs - 1  # the failed run wrote nothing; the refused one tried and was refused
    assert report.indicator("conformance").value == pytest.approx(1 - 2 / writes)
    causes = {(i.sli, i.day, i.cause) for i in report.incidents}
    assert ("freshness", failed_day, "failed run") in causes
    assert ("freshness", refused_day, "audit refused") in causes
    assert ("success_rate", None, "failed run") in causes
    assert ("conformance", None, "audit refused") in causes
    assert ("conformance", None, "audit failed") in causes
    stale = 2 * 5 * HOUR  # each day served at +35 h instead of +30 h
    assert report.indicator("freshness").value == pytest.approx(
        1 - stale / dt.timedelta(hours=WINDOW)
    )


def test_a_restated_file_makes_its_day_stale_again_until_refreshed():
    day = dt.date(2026, 10, 16)
    history = _healthy()
    restated = _closes(day) + 72 * HOUR
    history.arrivals.append(_landed(day, restated))
    history.refreshes.append(Refresh(restated + 33 * HOUR, "run-restated", _one_day(day)))
    report = measure(_scope(), history, NOW)
    (incident,) = report.incidents
    assert incident.start == restated + 30 * HOUR and incident.end == restated + 33 * HOUR
    assert "rewrote its file" in incident.detail


def test_a_version_no_raw_build_read_is_not_served_by_a_refresh_after_it_was_written():
    """The file was rewritten while its raw step read the old version: the refresh that
    followed served the old rows, so the day is stale from the rewrite + the SLA until a
    refresh after a build read the new version."""
    day = dt.date(2026, 10, 16)
    history = _healthy()
    rewritten = _closes(day) + HOUR + dt.timedelta(minutes=5)  # before the 2 h refresh
    history.arrivals.append(_landed(day, rewritten, read=None))
    report = measure(_scope(), history, NOW)
    (incident,) = report.incidents
    assert incident.start == rewritten + 30 * HOUR and incident.end is None
    history.arrivals[-1] = _landed(day, rewritten, read=40 * HOUR)
    history.refreshes.append(Refresh(rewritten + 41 * HOUR, "repaired", _one_day(day)))
    (incident,) = measure(_scope(), history, NOW).incidents
    assert incident.end == rewritten + 41 * HOUR


def test_a_version_rewritten_before_any_build_read_it_is_served_with_its_successor():
    day = dt.date(2026, 10, 16)
    history = _healthy()
    first = _closes(day) + 50 * HOUR
    history.arrivals.append(_landed(day, first, read=None))  # replaced a minute later
    history.arrivals.append(_landed(day, first + dt.timedelta(minutes=1), read=HOUR))
    history.refreshes.append(Refresh(first + 2 * HOUR, "restated", _one_day(day)))
    assert measure(_scope(), history, NOW).incidents == ()


def test_completeness_is_rows_published_over_rows_landed_and_names_the_days_short():
    history = _healthy()
    history.rows = {dt.date(2026, 10, 1) + dt.timedelta(days=i): (1000, 0) for i in range(30)}
    history.rows[dt.date(2026, 10, 8)] = (990, 10)
    report = measure(_scope(completeness=0.999), history, NOW)
    in_window = [d for d in history.rows if _closes(d) >= NOW - dt.timedelta(days=28)]
    assert report.indicator("completeness").value == pytest.approx(1 - 10 / (1000 * len(in_window)))
    (short,) = [i for i in report.incidents if i.sli == "completeness"]
    assert short.day == dt.date(2026, 10, 8) and short.detail.startswith("10 of 1000")


def test_latency_is_judged_against_its_p95_objective_with_a_five_percent_budget():
    history = _healthy()
    for i, day in enumerate([dt.date(2026, 10, 5), dt.date(2026, 10, 6)]):
        history.refreshes[:] = [r for r in history.refreshes if r.run_id != f"run-{day}"]
        history.refreshes.append(
            Refresh(_closes(day) + (10 + i) * HOUR, f"slow-{i}", _one_day(day))
        )
    report = measure(_scope(latency_p95_hours=4), history, NOW)
    latency = report.indicator("latency")
    arrivals = 28  # the files of Oct 3 .. Oct 30 landed inside the window
    assert latency.budget_left == pytest.approx(1 - (2 / arrivals) / 0.05)
    assert report.latency_median_hours == 1.0


def test_the_burn_rate_is_the_last_days_bad_share_over_the_allowed_share():
    day = dt.date(2026, 10, 30)  # closes Oct 31, due Nov 1 06:00 (+30 h); served 6 h late
    history = _healthy(skip=(day,))
    history.arrivals.append(_landed(day, _closes(day) + HOUR))
    history.refreshes.append(Refresh(_closes(day) + 36 * HOUR, "late", _one_day(day)))
    report = measure(_scope(), history, NOW + 12 * HOUR)  # the last day: 6 h of 24 stale
    burn = report.indicator("freshness").burn_rate
    assert burn == pytest.approx((6 / 24) / 0.05)


def test_no_measurement_before_the_mart_first_went_live():
    history = _healthy()
    history.refreshes.clear()
    report = measure(_scope(), history, NOW)
    assert report.indicator("freshness").value is None
    assert report.indicator("success_rate").value is None
    assert report.measured_from is None


def _broken(lakehouse: Lakehouse, tmp_path) -> object:
    """The lakehouse's definitions with the performance fact emitting every row twice: its
    unique_key audit refuses the write."""
    folder = tmp_path / "broken"
    folder.mkdir()
    shutil.copy(MART.sql_file.with_suffix(".yml"), folder)
    sql = MART.sql_file.read_text().replace(
        "select * from final", "select * from final union all select * from final limit 1000000"
    )
    (folder / MART.sql_file.name).write_text(sql)
    return build_definitions(lakehouse.settings, marts=[build_mart(folder, MART.contract.name)])


def test_the_slis_of_real_runs_with_a_failed_run_a_refused_audit_and_quarantined_rows(
    lakehouse, tmp_path
):
    """Records are timestamped by the clock, so these days are the three before today."""
    today = dt.datetime.now(dt.UTC).date()
    first, second, third = days(today - dt.timedelta(days=3), 3)
    lakehouse.seed(first, 3)
    ads = lakehouse.landing.read_bytes("mkt_ad_stats", first)
    header, row = ads.splitlines()[:2]
    bad = row.replace(b",USD,", b",EUR,")
    assert bad != row
    lakehouse.landing.write_bytes("mkt_ad_stats", first, ads + b"\n".join([bad] * 4) + b"\n")
    lakehouse.landing.filesystem().rm(lakehouse.landing.path("mkt_campaigns", third))

    live = lakehouse.run(first, second)
    failed = materialize_days(lakehouse.defs, lakehouse.instance, third, third)  # no catalog yet
    assert not failed.success
    land(lakehouse.landing, [third], FINAL, SIM, sources=["mkt_campaigns"])  # it lands, late
    refused = materialize_days(_broken(lakehouse, tmp_path), lakehouse.instance, third, third)
    assert not refused.success
    fixed = lakehouse.run(third)

    now = dt.datetime.now(dt.UTC)
    key = AssetKey(["marketing", MART.contract.name])
    history = read_history(
        MART.contract,
        key,
        lakehouse.instance,
        lakehouse.warehouse,
        lakehouse.landing,
        now - dt.timedelta(days=28),
        now,
    )
    failures = {f.run_id: f for f in history.failures}
    assert (
        failures[refused.run_id].audit_refused and "unique_key" in failures[refused.run_id].message
    )
    assert not failures[failed.run_id].audit_refused
    assert {r.run_id for r in history.refreshes} == {live.run_id, fixed.run_id}

    # an SLA of 0 h: every closed day is due, whatever the hour the test runs at
    scope = scope_of(MART.contract.model_copy(update={"freshness_sla_hours": 0}))
    report = measure(scope, history, now)
    assert report.indicator("success_rate").value == pytest.approx(2 / 4)
    assert report.indicator("conformance").value == pytest.approx(2 / 3)

    published = sum(
        lakehouse.warehouse.read(f"raw.raw_{source}").num_rows for source in scope.sources
    )
    assert report.indicator("completeness").value == pytest.approx(published / (published + 4))
    (short,) = [i for i in report.incidents if i.sli == "completeness"]
    assert short.day == first and short.detail.startswith(f"4 of {history.rows[first][0] + 4}")

    # the third day was stale from when the mart went live until the run that served it
    went_live = min(r.at for r in history.refreshes)
    served = min(r.at for r in history.refreshes if r.run_id == fixed.run_id)
    stale = served - went_live
    assert report.indicator("freshness").value == pytest.approx(
        1 - stale / (now - went_live), abs=1e-6
    )
    (late,) = [i for i in report.incidents if i.sli == "freshness"]
    assert (late.day, late.cause, late.end) == (third, "late source", served)

    # the hourly checks job judges the budget in Dagster: the check's metadata has the figures
    hourly = run_job(lakehouse.defs, lakehouse.instance, freshness_checks_job, None)
    (row,) = [r for r in hourly.checks if r.check == "slo_budget" and "performance" in r.asset]
    assert row.severity == "WARN" and not row.passed and "success_rate" in row.detail
    check = AssetCheckKey(key, "slo_budget")
    evaluation = lakehouse.instance.get_latest_asset_check_evaluation_record(check)
    metadata = evaluation.event.dagster_event.event_specific_data.metadata
    assert metadata["success_rate/value"].value == pytest.approx(0.5)
    assert metadata["success_rate/budget_left"].value == pytest.approx(1 - 0.5 / 0.05)


def test_an_old_day_is_judged_only_on_its_rewrites_and_only_if_the_mart_serves_it():
    history = _healthy()
    history.arrivals_from = dt.datetime(2026, 9, 24, tzinfo=dt.UTC)  # records begin here
    served_old, never_built = dt.date(2026, 8, 1), dt.date(2026, 7, 1)
    history.refreshes.append(Refresh(_closes(served_old), "old-build", _one_day(served_old)))
    rewrite = dt.datetime(2026, 10, 20, tzinfo=dt.UTC)
    for day in (served_old, never_built):
        history.arrivals.append(_landed(day, rewrite))
    history.refreshes.append(Refresh(rewrite + 40 * HOUR, "restated", _one_day(served_old)))
    report = measure(_scope(), history, NOW)
    (incident,) = report.incidents
    assert incident.day == served_old and incident.end - incident.start == 10 * HOUR


def test_a_first_backfill_in_chunks_is_not_an_outage_but_a_missing_source_is():
    landed = NOW - 10 * HOUR
    days_ = [dt.date(2026, 10, 24) + dt.timedelta(days=i) for i in range(6)]  # the last is due
    history = History(arrivals=[_landed(d, landed) for d in days_[:5]])
    history.refreshes += [
        Refresh(landed + HOUR, "chunk-1", DayWindow(days_[0], days_[3])),
        Refresh(landed + 2 * HOUR, "chunk-2", DayWindow(days_[3], days_[5] + dt.timedelta(1))),
    ]
    report = measure(_scope(), history, NOW)
    assert report.measured_from == landed + 2 * HOUR  # live once the backfill caught up
    # the sixth day's file never came: the live mart is stale on it from then on
    (missing,) = [i for i in report.incidents if i.sli == "freshness"]
    assert missing.day == days_[5] and missing.cause == "late source" and missing.end is None
    assert report.indicator("freshness").value == 0.0


def test_an_outage_of_n_hours_through_real_runs_costs_those_hours(lakehouse, monkeypatch):
    """The mart went live five hours ago (its run's records carry a clock set back five hours),
    a restated file landed three hours ago (its modification time), and only now does a run
    serve it: the day was stale three hours, plus the run's own seconds."""
    hours = 3
    real_time = time.time
    now = dt.datetime.now(dt.UTC)
    day = now.date() - dt.timedelta(days=1)  # closed, and the last closed: no later day is due
    lakehouse.seed(day, 1)
    for source in scope_of(MART.contract).sources:
        path = lakehouse.landing.path(source, day)
        landed = (now - (hours + 3) * HOUR).timestamp()
        os.utime(path, (landed, landed))
    with monkeypatch.context() as clock:
        clock.setattr(time, "time", lambda: real_time() - (hours + 2) * 3600)
        lakehouse.run(day)  # went live five hours ago
    restated = lakehouse.landing.path("mkt_ad_stats", day)
    lakehouse.landing.write_bytes("mkt_ad_stats", day, Path(restated).read_bytes() + b"")
    arrived = (now - hours * HOUR).timestamp()
    os.utime(restated, (arrived, arrived))
    lakehouse.run(day)  # served now

    later = dt.datetime.now(dt.UTC)
    history = read_history(
        MART.contract,
        AssetKey(["marketing", MART.contract.name]),
        lakehouse.instance,
        lakehouse.warehouse,
        lakehouse.landing,
        later - dt.timedelta(days=28),
        later,
    )
    scope = scope_of(MART.contract.model_copy(update={"freshness_sla_hours": 0}))
    report = measure(scope, history, later)
    (outage,) = [i for i in report.incidents if i.sli == "freshness"]
    assert outage.day == day and outage.start == dt.datetime.fromtimestamp(arrived, dt.UTC)
    assert hours * HOUR <= outage.end - outage.start <= hours * HOUR + (later - now)
    live = report.measured_from
    assert live == min(r.at for r in history.refreshes)
    assert (now - live) == pytest.approx((hours + 2) * HOUR, abs=dt.timedelta(minutes=2))
    expected = 1 - (outage.end - outage.start) / (later - live)
    assert report.indicator("freshness").value == pytest.approx(expected, abs=1e-9)
    assert report.indicator("freshness").budget_left == pytest.approx(
        1 - (1 - expected) / (1 - 0.95), abs=1e-9
    )
