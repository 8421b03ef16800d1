"""The declarative automation condition of every table derived from raw."""

from dagster import AutomationCondition


def propagate_updates() -> AutomationCondition:
    """Refresh a partition once any partition it reads was updated since it last handled one.

    Unlike `eager()`, it is not limited to the latest time window (late data restates past
    days), does not wait for *missing* upstream partitions (a week with days before the data
    starts, or a dimension over the whole history, would never run), and it never materializes
    on top of an upstream partition whose blocking checks failed.
    """
    return (
        AutomationCondition.any_deps_updated().since_last_handled()
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
        & AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label("propagate_updates")
