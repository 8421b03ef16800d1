"""The one daily partitioning every fact shares, the week/month partitions of the aggregates
that map onto it, and how ranges of them run."""

import datetime as dt

from dagster import (
    BackfillPolicy,
    DailyPartitionsDefinition,
    MonthlyPartitionsDefinition,
    TimeWindowPartitionMapping,
    TimeWindowPartitionsDefinition,
    WeeklyPartitionsDefinition,
)
from dagster._core.definitions.partitions.utils.time_window import TimeWindow

PARTITIONS_START = "2024-01-01"  # a Monday, so weeks and months both start on it

# A day is a partition once it has closed (end_offset=0): landing files for day D arrive after D.
daily_partitions = DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC")

# Aggregates include the week / month in progress (end_offset=1): week-to-date, month-to-date.
weekly_partitions = WeeklyPartitionsDefinition(
    start_date=PARTITIONS_START, day_offset=1, timezone="UTC", end_offset=1
)
monthly_partitions = MonthlyPartitionsDefinition(
    start_date=PARTITIONS_START, timezone="UTC", end_offset=1
)

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

# A backfill of many days is one run (one Iceberg commit per asset), not one process per day.
single_run_backfill = BackfillPolicy.single_run()


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


def range_tags(first_key: str, last_key: str) -> dict[str, str]:
    """Run tags that make one run cover the partition keys [first_key, last_key]."""
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    return {ASSET_PARTITION_RANGE_START_TAG: first_key, ASSET_PARTITION_RANGE_END_TAG: last_key}
