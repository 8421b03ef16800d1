"""A failed or refused write, partitioned or not, is remembered until a run repairs it: by
`marts sync`, `freshness`, `summary`, `slo` and the page, and counted in the run's tally."""

from __future__ import annotations

import collections
import datetime as dt
import json

import pytest
from dagster import DagsterInstance

from marts_project.cli import main
from marts_project.core.partitions import (
    DayWindow,
    daily_partitions,
    last_closed_day,
    period_of,
    weekly_partitions,
)
from marts_project.execution.runs import materialize_days
from marts_project.observability.failures import failed_days_in_lineage, keys_within
from marts_project.observability.freshness import failures_window, judged_days
from marts_project_tests.conftest import Lakehouse

DAY = last_closed_day(dt.datetime.now(dt.UTC)) - dt.timedelta(days=1)


@pytest.fixture
def built(lakehouse: Lakehouse, monkeypatch, capsys) -> Lakehouse:
    """Two recent days built by the CLI on its persistent instance."""
    monkeypatch.setenv("MARTS_DATA_DIR", str(lakehouse.settings.data_dir))
    lakehouse.seed(DAY, 2)
    assert main(["backfill", "--start", str(DAY), "--end", str(DAY + dt.timedelta(days=1))]) == 0
    capsys.readouterr()
    return lakehouse


def _rewrite(lake: Lakehouse, source: str, day: dt.date, old: str, new: str) -> None:
    path = f"{lake.settings.landing}/{source}/{day}.csv"
    with open(path) as handle:
        text = handle.read()
    with open(path, "w") as handle:
        handle.write(text.replace(old, new))


def test_a_refused_write_of_an_unpartitioned_mart_is_remembered_everywhere(built, capsys):
    _rewrite(built, "mkt_campaigns", DAY + dt.timedelta(days=1), ",cpc\n", ",bogus\n")
    assert main(["sync"]) == 1
    out = capsys.readouterr().out
    assert "marketing/mkt_channel_dim" in out and "(whole table)" in out
    assert "checks failed: 1" in out  # the refused audit is a failed check in the tally

    for command in (["sync"], ["freshness"], ["summary"]):  # later: still not healthy
        assert main(command) == 1, command
        assert "marketing/mkt_channel_dim" in capsys.readouterr().out, command
    assert main(["report", "--out", str(built.settings.data_dir / "page")]) == 0
    page = json.loads((built.settings.data_dir / "page" / "report.json").read_text())
    assert page["failed"] == {"marketing/mkt_channel_dim": ["(whole table)"]}


def test_a_raw_step_that_fails_marks_its_marts_days_failed_and_spends_their_slo(built, capsys):
    _rewrite(built, "mkt_ad_stats", DAY, "spend,", "cost,")  # a required column renamed
    assert main(["sync"]) == 1
    capsys.readouterr()

    assert main(["freshness", "--json"]) == 1
    days = json.loads(capsys.readouterr().out)["mkt_campaign_performance_fact"]
    failed = {d["day"]: d["failed_asset"] for d in days if d["status"] == "failed"}
    # the day of the broken file, and the days whose late rows it may hold, name the raw table
    assert str(DAY) in failed and set(failed.values()) == {"raw/raw_mkt_ad_stats"}

    main(["slo", "--mart", "mkt_campaign_performance_fact", "--json"])
    (report,) = json.loads(capsys.readouterr().out)
    rate = next(i for i in report["indicators"] if i["sli"] == "success_rate")
    assert rate["value"] < 1
    assert any("raw__raw_mkt_ad_stats" in i["detail"] for i in report["incidents"])


def test_the_checks_of_a_run_read_each_tables_failures_once_and_see_an_earlier_failure(
    lakehouse: Lakehouse, monkeypatch
):
    lakehouse.seed(DAY, 2)
    broken = DAY + dt.timedelta(days=1)
    _rewrite(lakehouse, "mkt_ad_stats", broken, "spend,", "cost,")  # a required column renamed
    assert not materialize_days(lakehouse.defs, lakehouse.instance, broken, broken).success
    _rewrite(lakehouse, "mkt_ad_stats", broken, "cost,", "spend,")  # fixed, not yet rebuilt

    reads: collections.Counter = collections.Counter()
    read = DagsterInstance.get_status_by_partition

    def counted(self, key, *args, **kwargs):
        reads[key] += 1
        return read(self, key, *args, **kwargs)

    monkeypatch.setattr(DagsterInstance, "get_status_by_partition", counted)
    later = lakehouse.run(DAY)  # the day before (its late rows are in the fixed file)

    assert reads and max(reads.values()) == 1  # six marts' checks, each table read once
    check = next(
        c
        for c in later.checks
        if c.check == "partition_freshness" and c.asset.endswith("mkt_campaign_performance_fact")
    )
    assert not check.passed and "(raw/raw_mkt_ad_stats failed)" in check.detail


def test_the_days_a_failure_touches_follow_late_rows_and_the_marts_own_periods():
    days = [dt.date(2026, 11, d) for d in range(16, 24)]  # Mon 16 .. Mon 23
    late = {"mkt_ad_stats": 3}
    raw = {"raw/raw_mkt_ad_stats": ["2026-11-20"]}  # its file may hold rows of 17..20
    touched = failed_days_in_lineage(
        "mkt_campaign_performance_fact", daily_partitions, raw, days, late
    )
    assert sorted(touched) == [dt.date(2026, 11, d) for d in (17, 18, 19, 20)]

    week = {"marketing/mkt_attribution_funnel_agg": ["2026-11-16"]}  # the week of Mon 16
    touched = failed_days_in_lineage(
        "mkt_attribution_funnel_agg", weekly_partitions, week, days, late
    )
    assert sorted(touched) == days[:7]

    whole = {"marketing/mkt_channel_dim": ["(whole table)"]}
    assert sorted(failed_days_in_lineage("mkt_channel_dim", None, whole, days, late)) == days
    assert failed_days_in_lineage("ops_orders_fact", daily_partitions, raw, days, late) == {}


def test_a_freshness_check_reads_the_failures_of_the_partitions_holding_its_days_only():
    """Its cost follows the days it judges, not the years of partitions a lake keeps."""
    now = dt.datetime.now(dt.UTC)
    days = judged_days(now)
    window = failures_window(now)
    # the judged days, and the ad platform's restatements up to 3 days after the last one
    assert window == DayWindow(days[0], days[-1] + dt.timedelta(days=4))

    daily = keys_within(daily_partitions, window)
    assert daily[0] == str(days[0]) and daily[-1] <= str(days[-1] + dt.timedelta(days=3))
    assert len(daily) < len(daily_partitions.get_partition_keys())
    weekly = keys_within(weekly_partitions, window)  # the week holding the first day counts
    assert weekly[0] == period_of(weekly_partitions, days[0]).start.isoformat()
    assert keys_within(daily_partitions, None) == daily_partitions.get_partition_keys()
