"""The time vocabulary: the one daily partitioning every fact shares, the week/month partitions
of the aggregates that map onto it, the day window a run covers, the last closed day, and how
ranges of partitions run. Every other module asks this one about days."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckExecutionContext,
    BackfillPolicy,
    DailyPartitionsDefinition,
    InputContext,
    MonthlyPartitionsDefinition,
    OpExecutionContext,
    OutputContext,
    TimeWindow,
    TimeWindowPartitionMapping,
    TimeWindowPartitionsDefinition,
    WeeklyPartitionsDefinition,
)

from marts_project.settings import (
    SettingError,
    chunk_days,
    chunk_megabytes,
    partitions_start_setting,
)


def default_partitions_start(today: dt.date) -> dt.date:
    """The first partition when no setting names one: the Monday on or before the 1st of the
    month three months before `today`'s, so the monthly 90-day catch-up window, its weeks and
    its months are all partitions, and a new deployment's partitions bar (a few months, not
    every day since some fixed year) shows how much of it is filled."""
    month = today.month - 3
    first = dt.date(today.year + (month - 1) // 12, (month - 1) % 12 + 1, 1)
    return first - dt.timedelta(days=first.weekday())


def partitions_start(environ: Mapping[str, str] | None = None, today: dt.date | None = None) -> str:
    """The first daily partition: `MARTS_PARTITIONS_START` (YYYY-MM-DD), else the default.

    A deployment that keeps history sets it once and never moves it: days before it are not
    partitions (the landing sensor reports their files as never built), so the default, which
    follows the calendar, suits a demo or a trial, not a lake with years of history.
    """
    if value := partitions_start_setting(environ):
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            raise SettingError(
                f"MARTS_PARTITIONS_START={value!r} is not a date (expected YYYY-MM-DD)"
            ) from None
    return default_partitions_start(today or dt.datetime.now(dt.UTC).date()).isoformat()


# Read when the assets are defined, like the chunk size below: the daemon, the UI and every
# worker of a deployment must agree on it (`marts cluster up` pins it for all its processes).
PARTITIONS_START = partitions_start()

# A day is a partition once it has closed (end_offset=0): landing files for day D arrive after D.
daily_partitions = DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC")

# Aggregates include the week / month in progress (end_offset=1): week-to-date, month-to-date.
weekly_partitions = WeeklyPartitionsDefinition(
    start_date=PARTITIONS_START, day_offset=1, timezone="UTC", end_offset=1
)
monthly_partitions = MonthlyPartitionsDefinition(
    start_date=PARTITIONS_START, timezone="UTC", end_offset=1
)

# (UTC day, id of a partitions definition) -> (the definition, what it answered that day)
_TODAY: dict[tuple[dt.date, int], tuple[TimeWindowPartitionsDefinition, dict]] = {}


def _answers_today(partitions_def: TimeWindowPartitionsDefinition) -> dict:
    """This UTC day's memo of `partitions_def`'s answers. Which partitions exist changes only
    when a UTC day begins (days close at 00:00 UTC, weeks and months appear as they start),
    and Dagster derives each answer from its cron again (all keys of two years of days: 17
    ms; the period of a day: 0.7 ms), which plans and checks ask for every day of history."""
    today = dt.datetime.now(dt.UTC).date()
    if any(day != today for day, _ in _TODAY):
        _TODAY.clear()
    # the definition is kept with its memo, so its id is never another object's
    return _TODAY.setdefault((today, id(partitions_def)), (partitions_def, {}))[1]


def partition_keys(partitions_def: TimeWindowPartitionsDefinition) -> list[str]:
    """`partitions_def.get_partition_keys()` now, computed once per UTC day."""
    memo = _answers_today(partitions_def)
    if "keys" not in memo:
        memo["keys"] = tuple(partitions_def.get_partition_keys())
    return list(memo["keys"])


def closed_period_key(partitions_def: TimeWindowPartitionsDefinition, day: str) -> str | None:
    """The key of the partition of `partitions_def` holding `day` (ISO), None when there is
    none yet (a period not started, a day outside the partitions); once per UTC day."""
    memo = _answers_today(partitions_def)
    if day not in memo:
        start = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), dt.UTC)
        try:
            key = partitions_def.get_partition_key_for_timestamp(start.timestamp())
        except Exception:  # a day outside the partitions
            key = None
        memo[day] = key if key is not None and key in _key_set(partitions_def) else None
    return memo[day]


def _key_set(partitions_def: TimeWindowPartitionsDefinition) -> frozenset[str]:
    """The partition keys now, as a set, once per UTC day (Dagster's `has_partition_key` took
    0.8 ms a call, 0.14 s of a one-day refresh on 90 days of history)."""
    memo = _answers_today(partitions_def)
    if "key_set" not in memo:
        memo["key_set"] = frozenset(partition_keys(partitions_def))
    return memo["key_set"]


PARTITIONINGS: dict[str, TimeWindowPartitionsDefinition | None] = {
    "daily": daily_partitions,
    "weekly": weekly_partitions,
    "monthly": monthly_partitions,
    "none": None,
}


def partitioning_of(partitions_def: TimeWindowPartitionsDefinition | None) -> str:
    """The name of a partitioning (the `partitioning` tag every table carries)."""
    return next(name for name, p in PARTITIONINGS.items() if p is partitions_def)


# A week or month reads exactly its days; days of the running period that have not closed yet
# simply are not there.
days_of_period = TimeWindowPartitionMapping(allow_nonexistent_upstream_partitions=True)

# A range of days runs as chunks of at most CHUNK_DAYS days, one run (one Iceberg commit per
# asset) each: a run holds its whole window in Arrow (~0.66 KB of RSS per landing row), so an
# unchunked year at 50,000 ad rows a day would need tens of GB; a chunk bounds a backfill's
# memory by its chunk, whatever its length. Chunks are independent (every daily input is read
# on the same day), so the daemon may run them one after another (embedded: one run at a time)
# or side by side (a cluster), and the result equals one run over the whole range.
# MARTS_CHUNK_DAYS sets it per deployment (read when the assets are defined: a backfill policy
# is part of an asset's definition, so the daemon, the UI and the workers must agree on it).
CHUNK_DAYS = chunk_days()
# Where marts itself splits a range (`marts backfill`, `reprocess`, `demo`), it knows how large
# each day's landing files are, so a chunk is sized by what it reads instead of by a day count:
# consecutive days whose landing files add up to at most CHUNK_BYTES (MARTS_CHUNK_MB, default
# 256 MB), at most SIZED_CHUNK_MAX_DAYS days, a day larger than the budget in a run of its own.
# A daily run's peak RSS stays under about 0.3 GB of code plus 5 times the landing bytes it
# reads (1.4 GB for 250 MB at 100,000 rows a day, BENCHMARKS.md). Small lineages then run a
# month in one run (each run has a fixed cost: planning, a commit per table, checks over its
# window), and memory follows the bytes, not the calendar.
CHUNK_BYTES = int(chunk_megabytes() * 1_000_000)
SIZED_CHUNK_MAX_DAYS = 31


def chunk_peak_bytes(budget: int = CHUNK_BYTES) -> int:
    """The most a daily run reading `budget` bytes of landing files holds (the bound above)."""
    return int(0.3e9) + 5 * budget


# Weeks and months are chunked too, so a long range never puts all its periods in one run: the
# monthly P&L reads every order of its months, and a year of months would hold a year of orders.
PERIODS_PER_RUN: dict[str, int] = {"daily": CHUNK_DAYS, "weekly": 4, "monthly": 1}


RECENT_DAYS = 28  # the landing days that size a deployment's backfill policy


def days_in_budget(
    day_bytes: Mapping[dt.date, int], max_bytes: int = CHUNK_BYTES, default: int = CHUNK_DAYS
) -> int:
    """How many days a run may cover and read at most `max_bytes` of landing files, judged by
    the largest of the latest RECENT_DAYS days of `day_bytes` (1 to SIZED_CHUNK_MAX_DAYS;
    `default` with no landing files): what a backfill policy, which can only count days, is
    set to where the landing zone is known when a deployment starts (`marts cluster up`)."""
    recent = sorted(day_bytes)[-RECENT_DAYS:]
    largest = max((day_bytes[day] for day in recent), default=0)
    if largest <= 0:
        return default
    return max(1, min(SIZED_CHUNK_MAX_DAYS, max_bytes // largest))


def backfill_policy(partitioning: str) -> BackfillPolicy:
    """How a backfill of a partitioning splits into runs: chunks of PERIODS_PER_RUN periods."""
    return BackfillPolicy.multi_run(max_partitions_per_run=PERIODS_PER_RUN[partitioning])


def contiguous_key_ranges(
    partitions_def: TimeWindowPartitionsDefinition, keys, max_len: int | None = None
) -> list[tuple[str, str]]:
    """The partition keys `keys` as (first, last) ranges of consecutive partitions, each at most
    `max_len` partitions long."""
    order = {k: i for i, k in enumerate(partition_keys(partitions_def))}
    ranges: list[tuple[str, str]] = []
    for key in sorted(keys, key=order.__getitem__):
        first, last = ranges[-1] if ranges else (None, None)
        if (
            ranges
            and order[key] == order[last] + 1
            and (max_len is None or order[key] - order[first] < max_len)
        ):
            ranges[-1] = (first, key)
        else:
            ranges.append((key, key))
    return ranges


def day_chunks(
    start: dt.date,
    end: dt.date,
    chunk_days: int = CHUNK_DAYS,
    day_bytes: Mapping[dt.date, int] | None = None,
    max_bytes: int = CHUNK_BYTES,
    at_once: int = 1,
) -> list[tuple[dt.date, dt.date]]:
    """The days [start, end] as consecutive (first, last) chunks of at most `chunk_days` days
    and, with `day_bytes` (each day's landing bytes), of at most `max_bytes` (a larger day
    alone), as even as that many chunks can be: 45 days that need three chunks run as three
    of 15, not 22 + 22 + 1, so no chunk holds more than it must. With `day_bytes`, chunks that
    run `at_once` side by side come in a multiple of that many (days allowing), so the last
    does not run alone on its share of the cores: three chunks for two processes are four."""
    if chunk_days < 1:
        raise ValueError(f"chunk_days must be at least 1, got {chunk_days}")
    if day_bytes is None:
        return _greedy_chunks(start, end, chunk_days, {}, 0)
    days = (end - start).days + 1
    count = len(_greedy_chunks(start, end, chunk_days, day_bytes, max_bytes))
    count = min(days, -(-count // at_once) * at_once)
    low, high = 0, max_bytes  # the smallest byte cap that still needs at most `count` chunks
    while low < high:
        middle = (low + high) // 2
        if len(_greedy_chunks(start, end, chunk_days, day_bytes, middle)) <= count:
            high = middle
        else:
            low = middle + 1
    fewest_days = next(  # then the smallest day cap that does
        d
        for d in range(min(chunk_days, -(-days // count)), chunk_days + 1)
        if len(_greedy_chunks(start, end, d, day_bytes, high)) <= count
    )
    return _greedy_chunks(start, end, fewest_days, day_bytes, high)


def _greedy_chunks(
    start: dt.date, end: dt.date, chunk_days: int, day_bytes: Mapping[dt.date, int], max_bytes: int
) -> list[tuple[dt.date, dt.date]]:
    """Each chunk filled with days while both caps allow (a day over `max_bytes` alone)."""
    chunks: list[tuple[dt.date, dt.date]] = []
    held = 0  # landing bytes of the last chunk
    for offset in range((end - start).days + 1):
        day = start + dt.timedelta(days=offset)
        size = day_bytes.get(day, 0)
        if chunks and (day - chunks[-1][0]).days < chunk_days and held + size <= max_bytes:
            chunks[-1], held = (chunks[-1][0], day), held + size
        else:
            chunks.append((day, day))
            held = size
    return chunks


def periods_in(
    partitions_def: TimeWindowPartitionsDefinition | None, start: dt.date, end: dt.date
) -> list[dt.date] | None:
    """Start dates of the partitions inside the days [start, end); None when unpartitioned."""
    if partitions_def is None or end == dt.date.max:
        return None
    span = TimeWindow(
        dt.datetime.combine(start, dt.time(), dt.UTC), dt.datetime.combine(end, dt.time(), dt.UTC)
    )
    periods = []
    for key in partitions_def.get_partition_keys_in_time_window(span):
        window = partitions_def.time_window_for_partition_key(key)
        if window.start.date() >= start and window.end.date() <= end:
            periods.append(window.start.date())
    return periods


def keys_covering(
    partitions_def: TimeWindowPartitionsDefinition, start: dt.date, end: dt.date
) -> list[str]:
    """The partition keys whose periods overlap the days [start, end] (the weeks and months a
    range of days touches, partly or whole)."""
    span = TimeWindow(
        dt.datetime.combine(start, dt.time(), dt.UTC),
        dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC),
    )
    return [
        key
        for key in partition_keys(partitions_def)
        if (w := partitions_def.time_window_for_partition_key(key)).start < span.end
        and w.end > span.start
    ]


RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"


def range_tags(first_key: str, last_key: str) -> dict[str, str]:
    """Run tags that make one run cover the partition keys [first_key, last_key] (the tags
    Dagster documents for a range run requested by a schedule or sensor)."""
    return {RANGE_START: first_key, RANGE_END: last_key}


def run_range(tags: dict[str, str]) -> tuple[str, str] | None:
    """The partition keys [first, last] a run covers, from its tags (a range run's two tags or
    a one-partition run's one); None for a run of no partition."""
    first = tags.get(RANGE_START) or tags.get(PARTITION_TAG)
    return (first, tags.get(RANGE_END) or first) if first else None


def day_closes(day: dt.date) -> dt.datetime:
    """When `day` closes: 00:00 UTC of the next day (days are UTC days, whatever the machine's
    time zone); its landing files can only be complete from then on."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)


def days_fed_by(file_day: dt.date, late_days: int) -> list[dt.date]:
    """The days whose rows the landing file of `file_day` may hold: its own and, for a source
    whose rows arrive up to `late_days` late, the days before it (oldest first)."""
    return [file_day - dt.timedelta(days=n) for n in range(late_days, -1, -1)]


def files_feeding(day: dt.date, late_days: int) -> list[dt.date]:
    """The days whose landing files may hold rows of `day`: its own file and the `late_days`
    after it (the inverse of `days_fed_by`)."""
    return [day + dt.timedelta(days=n) for n in range(late_days + 1)]


def last_closed_day(now: dt.datetime) -> dt.date:
    """The newest day that has closed at `now`: days are UTC days and close at 00:00 UTC, so the
    answer is the same on a machine in any time zone."""
    return now.astimezone(dt.UTC).date() - dt.timedelta(days=1)


@dataclass(frozen=True)
class DayWindow:
    """The days [start, end) a run, a step or a period covers."""

    start: dt.date
    end: dt.date  # exclusive

    @classmethod
    def of(cls, window: TimeWindow) -> DayWindow:
        return cls(window.start.date(), window.end.date())

    @property
    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days)]

    @property
    def last(self) -> dt.date:
        return self.end - dt.timedelta(days=1)

    def __str__(self) -> str:
        """`start..end`, half-open: the form recorded in snapshot summaries (machine-read)."""
        return f"{self.start}..{self.end}"

    @classmethod
    def parse(cls, text: str) -> DayWindow | None:
        """The window `str` wrote (`start..end`, end exclusive), None if `text` is not one."""
        start, sep, end = text.partition("..")
        try:
            return cls(dt.date.fromisoformat(start), dt.date.fromisoformat(end)) if sep else None
        except ValueError:
            return None

    @property
    def label(self) -> str:
        """The days as people read them, both ends included: `first .. last` (or one day)."""
        return str(self.start) if self.last == self.start else f"{self.start} .. {self.last}"


def day_window(
    context: OpExecutionContext | AssetCheckExecutionContext | InputContext | OutputContext,
) -> DayWindow | None:
    """The days the step's partitions cover (one key or a range), None when it has none."""
    if isinstance(context, InputContext | OutputContext):
        partitioned = context.has_asset_partitions
        return DayWindow.of(context.asset_partitions_time_window) if partitioned else None
    if isinstance(context, AssetCheckExecutionContext):
        context = context.op_execution_context
    if context.has_partition_key or context.has_partition_key_range:
        return DayWindow.of(context.partition_time_window)
    return None


def rows_per_partition(
    partitions_def: TimeWindowPartitionsDefinition | None,
    keys: Iterable[str] | None,
    data: pa.Table,
    column: str | None,
) -> dict[str, int] | None:
    """Rows of `data` in each partition of `keys`, by the day of its `column` (a date, or a UTC
    timestamp); None when unpartitioned. A range run (a backfill chunk) records one
    materialization per partition, each with its own partition's rows, not the whole range's."""
    if partitions_def is None or keys is None or column is None:
        return None
    days = data.column(column)
    if not pa.types.is_date32(days.type):
        days = pc.cast(days, pa.date32())
    counts = pc.value_counts(days).to_pylist()
    found: dict[str, int] = {}
    for key in keys:
        window = DayWindow.of(partitions_def.time_window_for_partition_key(key))
        found[key] = sum(
            c["counts"]
            for c in counts
            if c["values"] is not None and window.start <= c["values"] < window.end
        )
    return found


def period_of(partitions_def: TimeWindowPartitionsDefinition | None, day: dt.date) -> DayWindow:
    """The partition (day, week or month) holding `day`, as its partitions definition says; an
    unpartitioned table's period is all time."""
    if partitions_def is None:
        return DayWindow(dt.date.fromisoformat(PARTITIONS_START), dt.date.max)
    noon = dt.datetime.combine(day, dt.time(12), dt.UTC).timestamp()
    key = partitions_def.get_partition_key_for_timestamp(noon)
    return DayWindow.of(partitions_def.time_window_for_partition_key(key))


def input_keys(
    partitions_def: TimeWindowPartitionsDefinition | None,
    input_def: TimeWindowPartitionsDefinition | None,
    key: str | None,
    input_keys_known: Iterable[str | None],
) -> list[str | None]:
    """The partitions of an input (of `input_def`, out of `input_keys_known`) that partition
    `key` of a table of `partitions_def` reads: the whole of an unpartitioned input; every
    partition for an unpartitioned table; the same key for the same partitioning; the days of a
    week or month."""
    if input_def is None:
        return [None]
    if partitions_def is None:
        return list(input_keys_known)
    if partitions_def == input_def:
        return [key]
    window = partitions_def.time_window_for_partition_key(key)
    start, end = window.start.date().isoformat(), window.end.date().isoformat()
    return [k for k in input_keys_known if k is not None and start <= k < end]
