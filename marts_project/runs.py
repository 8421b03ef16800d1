"""Materialize day ranges through Dagster as single runs (what the CLI and demo drive)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterInstance, Definitions
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from marts_project.partitions import daily_partitions


class BadDateRangeError(ValueError):
    """An operator asked for a date range that is not a range of existing daily partitions."""


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    success: bool
    checks_passed: int
    checks_failed: list[str]


def parse_day(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise BadDateRangeError(f"{value!r} is not a date (expected YYYY-MM-DD)") from None


def partition_range(start: dt.date, end: dt.date) -> tuple[str, str]:
    """Validated first and last partition keys of the inclusive range [start, end]."""
    if end < start:
        raise BadDateRangeError(f"range is reversed: {start} is after {end}")
    keys = set(daily_partitions.get_partition_keys())
    for day in (start, end):
        if day.isoformat() not in keys:
            first, last = (
                daily_partitions.get_first_partition_key(),
                daily_partitions.get_last_partition_key(),
            )
            raise BadDateRangeError(
                f"{day} is not a daily partition (partitions run {first} .. {last}; a day is "
                "a partition once it has closed)"
            )
    return start.isoformat(), end.isoformat()


def instance_for(home: Path) -> DagsterInstance:
    """A persistent Dagster instance (the one `dagster dev` shows with DAGSTER_HOME=home)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").touch()
    return DagsterInstance.from_config(str(home))


def materialize_days(
    defs: Definitions,
    instance: DagsterInstance,
    start: dt.date,
    end: dt.date,
    job_name: str = "daily_assets_job",
    log_level: str = "WARNING",
) -> RunOutcome:
    """One run over [start, end] for every asset of `job_name`, with its checks."""
    first, last = partition_range(start, end)
    job = defs.resolve_job_def(job_name)
    result = job.execute_in_process(
        instance=instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        raise_on_error=False,
    )
    evaluations = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    failed = [
        f"{ev.asset_key.to_user_string()}:{ev.check_name}" for ev in evaluations if not ev.passed
    ]
    return RunOutcome(result.run_id, result.success, len(evaluations) - len(failed), failed)
