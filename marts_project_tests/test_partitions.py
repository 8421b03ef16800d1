"""The time vocabulary: the first partition, day windows, periods, the last closed day."""

import datetime as dt
import os
import subprocess
import sys

import pytest

from marts_project.core import partitions
from marts_project.core.partitions import (
    DayWindow,
    closed_period_key,
    daily_partitions,
    default_partitions_start,
    last_closed_day,
    monthly_partitions,
    partition_keys,
    partitions_start,
    period_of,
    weekly_partitions,
)

pytestmark = pytest.mark.quick  # the unit tier: `pytest -m quick`


@pytest.mark.parametrize(
    ("today", "first"),
    [
        (dt.date(2026, 11, 24), dt.date(2026, 7, 27)),  # Aug 1 is a Saturday
        (dt.date(2027, 1, 15), dt.date(2026, 9, 28)),  # across a year boundary: Oct 1
        (dt.date(2026, 3, 31), dt.date(2025, 12, 1)),  # Dec 1 2025 is a Monday itself
    ],
)
def test_the_default_first_partition_is_a_monday_before_the_last_three_months(today, first):
    assert default_partitions_start(today) == first
    assert first.weekday() == 0 and (today - first).days > 90


def test_a_setting_names_the_first_partition_and_a_bad_one_is_refused_by_name():
    assert partitions_start({"MARTS_PARTITIONS_START": "2025-02-03"}) == "2025-02-03"
    assert partitions_start({}, today=dt.date(2026, 11, 24)) == "2026-07-27"
    with pytest.raises(ValueError, match="MARTS_PARTITIONS_START='2025-13-01' is not a date"):
        partitions_start({"MARTS_PARTITIONS_START": "2025-13-01"})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MARTS_CHUNK_MB", "x", "MARTS_CHUNK_MB='x' is not a number of megabytes"),
        ("MARTS_CHUNK_MB", "nan", "MARTS_CHUNK_MB=nan: a positive number of megabytes"),
        ("MARTS_CHUNK_DAYS", "0", "MARTS_CHUNK_DAYS=0: a positive number of days"),
        ("MARTS_THREADS", "-1", "MARTS_THREADS=-1: a positive number of threads"),
        ("MARTS_PARTITIONS_START", "2025-13-01", "MARTS_PARTITIONS_START='2025-13-01' is not"),
    ],
)
def test_a_bad_chunk_or_partition_setting_is_one_line_naming_it_not_a_traceback(
    name, value, message, tmp_path
):
    """They are read when the definitions import, before any command runs: still a refusal
    (exit 2) that names the variable, as every other bad setting gets."""
    env = {**os.environ, name: value, "MARTS_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "marts_project", "backfill", "--start", "2026-10-01"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"marts: error: {message}")
    assert "Traceback" not in done.stderr


def test_a_new_deployment_shows_months_of_partitions_not_every_day_since_a_fixed_year():
    env = {k: v for k, v in os.environ.items() if k != "MARTS_PARTITIONS_START"}
    probe = (
        "from marts_project.core.partitions import daily_partitions as d, monthly_partitions as m;"
        "print(d.get_first_partition_key(), len(d.get_partition_keys()), "
        "m.get_first_partition_key())"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    today = dt.datetime.now(dt.UTC).date()
    first = default_partitions_start(today)
    assert out[0] == first.isoformat()
    assert 90 <= int(out[1]) <= 130  # the last closed day is the last partition
    assert dt.date.fromisoformat(out[2]) == (first + dt.timedelta(days=6)).replace(day=1)


def test_the_last_closed_day_is_a_utc_day_whatever_the_clock_zone():
    tokyo = dt.timezone(dt.timedelta(hours=9))
    assert last_closed_day(dt.datetime(2026, 11, 25, 5, 0, tzinfo=tokyo)) == dt.date(2026, 11, 23)
    assert last_closed_day(dt.datetime(2026, 11, 25, 0, 0, tzinfo=dt.UTC)) == dt.date(2026, 11, 24)


def test_a_day_window_lists_its_days_and_names_its_last():
    window = DayWindow(dt.date(2026, 2, 27), dt.date(2026, 3, 2))
    assert window.days == [dt.date(2026, 2, 27), dt.date(2026, 2, 28), dt.date(2026, 3, 1)]
    assert window.last == dt.date(2026, 3, 1)
    assert str(window) == "2026-02-27..2026-03-02"


@pytest.mark.parametrize(
    ("partitions_def", "day", "start", "end"),
    [
        (daily_partitions, dt.date(2026, 3, 4), dt.date(2026, 3, 4), dt.date(2026, 3, 5)),
        (weekly_partitions, dt.date(2026, 3, 1), dt.date(2026, 2, 23), dt.date(2026, 3, 2)),
        (weekly_partitions, dt.date(2026, 3, 2), dt.date(2026, 3, 2), dt.date(2026, 3, 9)),
        (monthly_partitions, dt.date(2024, 2, 29), dt.date(2024, 2, 1), dt.date(2024, 3, 1)),
        (monthly_partitions, dt.date(2026, 12, 31), dt.date(2026, 12, 1), dt.date(2027, 1, 1)),
    ],
)
def test_the_period_of_a_day_comes_from_its_partitions_definition(partitions_def, day, start, end):
    assert period_of(partitions_def, day) == DayWindow(start, end)


def test_partition_keys_and_periods_are_dagsters_answers_kept_for_the_utc_day(monkeypatch):
    for definition in (daily_partitions, weekly_partitions, monthly_partitions):
        assert partition_keys(definition) == definition.get_partition_keys()
    monday = weekly_partitions.get_partition_keys()[-2]  # a closed week
    thursday = (dt.date.fromisoformat(monday) + dt.timedelta(days=3)).isoformat()
    assert closed_period_key(weekly_partitions, thursday) == monday
    assert closed_period_key(monthly_partitions, thursday) == thursday[:8] + "01"
    assert closed_period_key(weekly_partitions, "1999-01-06") is None  # before the first
    next_week = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=8)).isoformat()
    assert closed_period_key(weekly_partitions, next_week) is None  # not started

    asked = []
    real = type(daily_partitions).get_partition_keys

    def counted(self, *args, **kwargs):
        asked.append(self)
        return real(self, *args, **kwargs)

    class Tomorrow(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return super().now(tz) + dt.timedelta(days=1)

    monkeypatch.setattr(type(daily_partitions), "get_partition_keys", counted)
    partition_keys(daily_partitions)
    assert asked == []  # kept for the day
    monkeypatch.setattr(partitions.dt, "datetime", Tomorrow)
    partition_keys(daily_partitions)
    assert asked == [daily_partitions]  # a new UTC day: asked again


def test_a_range_splits_into_chunks_of_at_most_n_days():
    first = dt.date(2026, 10, 1)
    chunks = partitions.day_chunks(first, first + dt.timedelta(days=9), 4)
    assert [(a.day, b.day) for a, b in chunks] == [(1, 4), (5, 8), (9, 10)]


def test_sized_chunks_hold_at_most_the_byte_budget_and_a_large_day_runs_alone():
    """Days of 30 bytes under a budget of 100: three a chunk; a day of 250 bytes is larger than
    the budget and runs on its own; the day cap still holds where the bytes would allow more."""
    first = dt.date(2026, 10, 1)
    days = [first + dt.timedelta(days=i) for i in range(8)]
    sizes = dict.fromkeys(days, 30) | {days[4]: 250}
    chunks = partitions.day_chunks(days[0], days[-1], 31, sizes, max_bytes=100)
    assert [(a.day, b.day) for a, b in chunks] == [(1, 3), (4, 4), (5, 5), (6, 8)]
    capped = partitions.day_chunks(days[0], days[-1], 2, dict.fromkeys(days, 1), max_bytes=100)
    assert [(a.day, b.day) for a, b in capped] == [(1, 2), (3, 4), (5, 6), (7, 8)]
    missing = partitions.day_chunks(days[0], days[-1], 31, {}, max_bytes=100)
    assert missing == [(days[0], days[-1])]  # no files: nothing to hold, one run


def test_sized_chunks_are_as_even_as_their_count_allows():
    """45 days of 10 bytes under a budget of 220 need three chunks: 15 days each, not
    22 + 22 + 1 (no chunk holds more than it must)."""
    first = dt.date(2026, 9, 1)
    days = [first + dt.timedelta(days=i) for i in range(45)]
    chunks = partitions.day_chunks(days[0], days[-1], 31, dict.fromkeys(days, 10), max_bytes=220)
    assert [(b - a).days + 1 for a, b in chunks] == [15, 15, 15]
    uneven = dict.fromkeys(days, 10) | {days[0]: 100}  # a heavy first day: fewer days with it
    chunks = partitions.day_chunks(days[0], days[-1], 31, uneven, max_bytes=220)
    held = [sum(uneven[d] for d in days if a <= d <= b) for a, b in chunks]
    assert len(chunks) == 3 and max(held) <= 190 and sum(held) == sum(uneven.values())


def test_chunks_run_side_by_side_come_in_a_multiple_of_the_runs_at_once():
    """Three chunks for two processes would leave the last running alone on half the cores:
    the 45 days run as four chunks, and a range of fewer days than processes a day each."""
    first = dt.date(2026, 9, 1)
    days = [first + dt.timedelta(days=i) for i in range(45)]
    sizes = dict.fromkeys(days, 10)
    chunks = partitions.day_chunks(days[0], days[-1], 31, sizes, max_bytes=220, at_once=2)
    assert len(chunks) == 4 and max((b - a).days + 1 for a, b in chunks) <= 12
    assert chunks[0][0] == days[0] and chunks[-1][1] == days[-1]
    assert all((b[0] - a[1]).days == 1 for a, b in zip(chunks, chunks[1:], strict=False))
    three = partitions.day_chunks(days[0], days[2], 31, sizes, max_bytes=220, at_once=4)
    assert three == [(d, d) for d in days[:3]]


def test_a_policys_days_per_run_fit_the_budget_at_the_largest_recent_day():
    """What `marts cluster up` sets MARTS_CHUNK_DAYS to for the backfills Dagster splits: the
    days a budget of 100 bytes holds at the largest of the latest 28 days; an older, larger
    day no longer counts; at least one day, at most 31; no files: the default."""
    first = dt.date(2026, 9, 1)
    days = [first + dt.timedelta(days=i) for i in range(40)]
    sizes = dict.fromkeys(days, 5) | {days[20]: 30}
    assert partitions.days_in_budget(sizes, max_bytes=100, default=7) == 3  # 100 // 30
    older = dict.fromkeys(days, 5) | {days[5]: 30}  # 35 days before the last: not recent
    assert partitions.days_in_budget(older, max_bytes=100, default=7) == 20  # 100 // 5
    assert partitions.days_in_budget({first: 500}, max_bytes=100, default=7) == 1
    assert partitions.days_in_budget({first: 1}, max_bytes=100, default=7) == 31
    assert partitions.days_in_budget({}, max_bytes=100, default=7) == 7


def test_cluster_up_sizes_the_policy_from_the_landing_zone_it_will_read(tmp_path):
    """Nothing landed: the default; one day of a sixteenth of the budget (16 MB of the default
    256 MB): 16 days a run; an operator's own MARTS_CHUNK_DAYS stays."""
    from marts_project.commands import cluster_chunk_days
    from marts_project.resources.landing import LandingZone

    env = {"MARTS_DATA_DIR": str(tmp_path / "data"), "MARTS_LANDING": str(tmp_path / "landing")}
    assert cluster_chunk_days(env) == partitions.CHUNK_DAYS  # nothing landed yet
    LandingZone(root=str(tmp_path / "landing")).write_bytes(
        "shop_orders", dt.date(2026, 9, 1), b"x" * (partitions.CHUNK_BYTES // 16)
    )
    assert cluster_chunk_days(env) == 16
    assert cluster_chunk_days({**env, "MARTS_CHUNK_DAYS": "5"}) == 5
