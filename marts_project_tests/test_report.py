"""The freshness and cost page, rendered from a hand-made report: escaped, readable axes, the
SLA line, no microseconds. (The page over a real instance is checked in chromium in
test_browser.py.)"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from marts_project.observability.report import charts, render_html, time_chart

pytestmark = pytest.mark.quick  # the unit tier: `pytest -m quick`


def _report(owner: str = "ana.ruiz") -> dict:
    return {
        "generated_at": "2026-11-03T06:15:42.123456+00:00",
        "marts": [
            {
                "name": "fin_revenue_daily_fact",
                "domain": "finance",
                "owner": owner,
                "sla_hours": 30,
                "last_refresh": "2026-11-03T05:01:02+00:00",
                "slo": None,
                "went_live": "2026-10-30T02:00:00+00:00",  # its first backfill ended
                "partitions": [
                    {
                        "day": "2026-10-20",
                        "status": "fresh",
                        "landing_changed_at": "2026-10-21T01:00:00+00:00",
                        # first built by the backfill that brought the mart live, 9 days on
                        "first_built_at": "2026-10-30T01:00:00+00:00",
                        "refreshed_at": "2026-10-30T01:00:00+00:00",
                    },
                    {
                        "day": "2026-11-01",
                        "status": "fresh",
                        "landing_changed_at": "2026-11-02T01:00:00+00:00",
                        "first_built_at": "2026-11-02T12:00:00.5+00:00",  # 12 h after close
                        "refreshed_at": "2026-11-02T12:00:00.5+00:00",
                    },
                    {
                        "day": "2026-11-02",
                        "status": "overdue",
                        "landing_changed_at": None,
                        "first_built_at": None,
                        "refreshed_at": None,
                    },
                ],
                "refreshes": [
                    {
                        "at": "2026-11-01T05:00:00+00:00",
                        "rows": 40,
                        "seconds": 1.5,
                        "cpu_seconds": 1.0,
                        "bytes_written": 100,
                        "partition": "2026-10-31",
                    },
                    {
                        "at": "2026-11-03T05:01:02+00:00",
                        "rows": 42,
                        "seconds": 2.5,
                        "cpu_seconds": 2.0,
                        "bytes_written": 100,
                        "partition": "2026-11-01",
                    },
                ],
            }
        ],
    }


def test_the_page_escapes_what_it_shows():
    page = render_html(_report(owner="<script>alert(1)</script>"))
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_times_are_shown_to_the_minute_in_utc_and_charts_have_dated_axes_and_units():
    page = render_html(_report())
    assert "Generated 2026-11-03 06:15 UTC" in page
    assert "last refresh 2026-11-03 05:01 UTC" in page
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d", page)  # no microseconds anywhere
    assert ">11-01 05:00<" in page and ">11-03 05:01<" in page  # a dated time axis
    assert "2.5 s</title>" in page and "42 rows</title>" in page  # values carry units
    assert "SLA 30 h" in page  # the latency chart's threshold line
    assert "2026-11-02 00:00 UTC: 12 h" in page  # day 11-01 closed, refreshed 12 h later


def test_a_day_first_built_by_the_backfill_that_brought_the_mart_live_is_no_late_refresh():
    (latency, *_) = charts(_report()["marts"][0])
    assert latency["title"] == "hours from day close to first serving"
    assert [bar["label"] for bar in latency["bars"]] == ["2026-11-02 00:00 UTC: 12 h"]
    (tick,) = latency["ticks"]  # drawn apart, on the axis, off the scale
    assert tick["label"] == "2026-10-21 00:00 UTC: first built by a backfill, 217 h after"
    assert [text for _, text in latency["y_ticks"]][-1] == "50 h"  # scaled to the SLA, not 217 h
    page = render_html(_report())
    assert "Grey ticks are days first built by the backfill" in page
    assert page.count("<small>") == 4  # every chart says what it measures


def test_bars_sit_at_their_time_and_scale_from_zero():
    chart = time_chart(
        [
            (dt.datetime(2026, 11, 1, tzinfo=dt.UTC), 1.0),
            (dt.datetime(2026, 11, 3, tzinfo=dt.UTC), 4.0),
        ],
        "wall seconds",
        "s",
        "#000",
        threshold=(5.0, "SLA 5 s"),
    )
    first, second = chart["bars"]
    assert first["x"] < second["x"]
    assert second["height"] == 4 * first["height"]  # from zero: heights proportional
    assert [text for _, text in chart["y_ticks"]] == ["0 s", "2.5 s", "5 s"]
    assert chart["threshold"][1] == "SLA 5 s"
    assert chart["threshold"][0] < second["y"]  # the SLA line is above the taller bar


def test_each_mart_shows_its_slis_against_its_slos_and_what_spent_the_budget():
    report = _report()
    report["marts"][0]["slo"] = {
        "window_days": 28,
        "out_of_budget": ["freshness"],
        "indicators": [
            {
                "sli": "freshness",
                "value": 0.9,
                "objective": 0.95,
                "budget_left": -1.0,
                "burn_rate": 3.25,
                "met": False,
            },
            {
                "sli": "latency",
                "value": 0.5,
                "objective": 30.0,
                "budget_left": 1.0,
                "burn_rate": 0.0,
                "met": True,
            },
        ],
        "incidents": [
            {
                "sli": "freshness",
                "day": "2026-11-01",
                "start": "2026-11-03T06:00:00+00:00",
                "end": None,
                "cause": "late source",
                "detail": "<b>psp</b> had not delivered",
            },
        ],
    }
    page = render_html(report)
    assert "out of budget: freshness" in page
    assert "<td>90.00 %</td><td>95.00 %</td>" in page and "-100.0 %" in page and "3.25x" in page
    assert "<td>30 min</td><td>30.0 h</td>" in page  # latency in time units
    assert "2026-11-03 06:00" in page and "ongoing" in page and "late source" in page
    assert "&lt;b&gt;psp&lt;/b&gt;" in page
