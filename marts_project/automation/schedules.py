"""Rolling reprocessing: late data that no sensor saw is still picked up within days."""

import datetime as dt

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    schedule,
)

from marts_project.partitions import daily_partitions, range_tags


def last_days_request(now: dt.datetime, days: int, reason: str) -> RunRequest:
    """One range run of the daily job over the `days` closed days before `now`."""
    end = now.astimezone(dt.UTC).date() - dt.timedelta(days=1)  # the last closed day
    first = max(
        end - dt.timedelta(days=days - 1),
        dt.date.fromisoformat(daily_partitions.get_first_partition_key()),
    )
    return RunRequest(
        run_key=f"{reason}:{first}:{end}",
        tags={**range_tags(first.isoformat(), end.isoformat()), "marts/trigger": reason},
    )


@schedule(
    name="nightly_reprocess_schedule",
    job_name="daily_assets_job",
    cron_schedule="0 3 * * *",  # every day at 03:00 UTC
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Re-materializes the last 7 days, raw to marts, as one run.",
)
def nightly_reprocess_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    return last_days_request(context.scheduled_execution_time, 7, "nightly_reprocess")


@schedule(
    name="monthly_catchup_schedule",
    job_name="daily_assets_job",
    cron_schedule="0 4 1 * *",  # 04:00 UTC on the first day of every month
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Re-materializes the last 90 days, raw to marts, as one run.",
)
def monthly_catchup_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    return last_days_request(context.scheduled_execution_time, 90, "monthly_catchup")


@schedule(
    name="freshness_checks_schedule",
    job_name="freshness_checks_job",
    cron_schedule="15 * * * *",  # every hour at a quarter past
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Re-evaluates every mart's per-partition freshness, so the UI shows it hourly.",
)
def freshness_checks_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    return RunRequest(run_key=f"freshness:{context.scheduled_execution_time.isoformat()}")
