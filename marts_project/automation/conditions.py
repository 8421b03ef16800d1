"""The declarative automation condition of every table derived from raw."""

from dagster import AssetSelection, AutomationCondition

# A partition whose last run failed is requested again at the next tick of this schedule, and
# at every one after it until a run succeeds: a failed refresh is never forgotten, and a
# failure that needs an operator (a broken file, a bug) costs one run per interval, not a storm.
RETRY_CRON = "*/15 * * * *"  # every 15 minutes


def propagate_updates(partitioning: str, retry_cron: str = RETRY_CRON) -> AutomationCondition:
    """Refresh a partition once a partition it reads has been updated after it was last built.

    - Along dependencies of the same partitioning (`partitioning` tag: daily -> daily, none ->
      none) it goes in the same tick as its inputs: Dagster then puts them in one run (one
      partition) or one backfill (several), both of which run in dependency order.
    - Across partitionings (days -> weeks, months, dimensions) it waits for the update to have
      *happened*: the daemon turns one tick into separate runs per partitioning and launches
      them unordered, so a week must never be requested beside the days it reads.
    - It is reset only by its own successful materialization, not by a request: a run that
      failed leaves it true, and it is requested again at the next `retry_cron` tick.
    - When an input updates while this table is running, the input's later timestamp wins over
      this table's own update (Dagster's `since` compares them), so it runs again.
    - Unlike `eager()`, it is not limited to the latest time window (late data restates past
      days), does not wait for *missing* upstream partitions (a week with days before the data
      starts, or a dimension over the whole history, would never run), and it never
      materializes on top of an upstream partition whose blocking checks failed.
    """
    same = AssetSelection.tag("partitioning", partitioning)
    updated = AutomationCondition.any_deps_match(AutomationCondition.newly_updated()).since(
        AutomationCondition.newly_updated()
    )
    upstream_now = AutomationCondition.any_deps_match(AutomationCondition.will_be_requested())
    retry_allowed = ~AutomationCondition.execution_failed() | (
        AutomationCondition.cron_tick_passed(retry_cron, "UTC").since_last_handled()
    )
    return (
        (updated | upstream_now.allow(same))
        & ~upstream_now.ignore(same)
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
        & AutomationCondition.all_deps_blocking_checks_passed()
        & retry_allowed
    ).with_label("propagate_updates")


def retry_failed(retry_cron: str = RETRY_CRON) -> AutomationCondition:
    """Request a raw partition again whose last run failed, at each `retry_cron` tick until a
    run succeeds (the landing sensor requests each landing file once; this remembers failures).
    """
    return (
        AutomationCondition.execution_failed()
        & ~AutomationCondition.in_progress()
        & AutomationCondition.cron_tick_passed(retry_cron, "UTC").since_last_handled()
    ).with_label("retry_failed")
