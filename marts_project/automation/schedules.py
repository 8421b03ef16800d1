"""Rolling reprocessing: late data that no sensor saw is still picked up within days."""

import datetime as dt

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    schedule,
)

from marts_project.core.partitions import daily_partitions, last_closed_day, range_tags
from marts_project.execution.jobs import daily_assets_job, freshness_checks_job, refresh_runs


def last_days_requests(now: dt.datetime, days: int, reason: str) -> list[RunRequest]:
    """Range runs of the daily job over the `days` closed days before `now`, as `refresh_runs`
    chunks them (memory stays bounded by a chunk; a cluster runs them side by side); the
    weeks, months and dimensions follow by automation."""
    end = last_closed_day(now)
    first = max(
        end - dt.timedelta(days=days - 1),
        dt.date.fromisoformat(daily_partitions.get_first_partition_key()),
    )
    return [
        RunRequest(
            run_key=f"{reason}:{run.key_range[0]}:{run.key_range[1]}",
            tags={**range_tags(*run.key_range), "marts/trigger": reason},
        )
        for run in refresh_runs(None, first, end, jobs=[daily_assets_job])
    ]


@schedule(
    name="nightly_reprocess_schedule",
    job=daily_assets_job,
    cron_schedule="0 3 * * *",  # every day at 03:00 UTC
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Re-materializes the last 7 days, raw to marts, as one range run.",
)
def nightly_reprocess_schedule(context: ScheduleEvaluationContext) -> list[RunRequest]:
    return last_days_requests(context.scheduled_execution_time, 7, "nightly_reprocess")


@schedule(
    name="monthly_catchup_schedule",
    job=daily_assets_job,
    cron_schedule="0 4 1 * *",  # 04:00 UTC on the first day of every month
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Re-materializes the last 90 days, raw to marts, in runs of 7 days.",
)
def monthly_catchup_schedule(context: ScheduleEvaluationContext) -> list[RunRequest]:
    return last_days_requests(context.scheduled_execution_time, 90, "monthly_catchup")


@schedule(
    name="freshness_checks_schedule",
    job=freshness_checks_job,
    cron_schedule="15 * * * *",  # every hour at a quarter past
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Re-evaluates every mart's per-partition freshness, so the UI shows it hourly.",
)
def freshness_checks_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    return RunRequest(run_key=f"freshness:{context.scheduled_execution_time.isoformat()}")
