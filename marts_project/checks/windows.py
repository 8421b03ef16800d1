"""Which days a check judges.

Checks are asset-level, not partitioned: Dagster 1.13 attributes a partitioned check's result
to no partition at all in a partition-range run (its evaluation carries a single partition key
or none), so `all_deps_blocking_checks_passed` could never see a range run's check pass. An
asset-level check run alongside a range run judges exactly the days that run wrote; run on its
own, it judges the whole table.
"""

import datetime as dt

from dagster import AssetCheckExecutionContext

from marts_project.core.partitions import day_window, period_of


def run_window(context: AssetCheckExecutionContext) -> tuple[dt.date, dt.date]:
    """[start, end) of the days the current run covers, or all days when it covers none."""
    window = day_window(context) or period_of(None, dt.date.min)
    return window.start, window.end
