"""The declarative automation condition of every table derived from raw."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from dagster import (
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    AutomationCondition,
    AutomationContext,
    AutomationResult,
)

from marts_project.core.partitions import input_keys
from marts_project.core.versions import BuildRecord

Records = Mapping[str | None, BuildRecord]

# A partition whose last run failed is requested again at the next tick of this schedule, and
# at every one after it until a run succeeds: a failed refresh is never forgotten, and a
# failure that needs an operator (a broken file, a bug) costs one run per interval, not a storm.
RETRY_CRON = "*/15 * * * *"  # every 15 minutes


class InputsChanged(AutomationCondition):
    """True for the partitions whose inputs changed in a column they read since they were
    built, by the lake's build records (`planner.rebuilt_input`, the one the plan uses): an
    input rebuilt with the same data in those columns (an added column, a rerun on the same
    landing files) is no reason to rebuild. Dagster's own `newly_updated` cannot tell, so this
    runs on the code server (`use_user_code_server` on the automation sensor)."""

    def __init__(self, records_of: Callable[[str], Records] | None = None) -> None:
        self._records_of = records_of
        self._seen: tuple[dt.datetime | None, dict[str, Records]] = (None, {})

    @property
    def name(self) -> str:
        return "inputs_changed"

    @property
    def description(self) -> str:
        return "A column it read of an input changed since it was built"

    def _records(self, context: AutomationContext, key: AssetKey) -> Records:
        """A table's build records, read once per evaluation."""
        when, cache = self._seen
        if when != context.evaluation_time:
            cache = {}
            self._seen = (context.evaluation_time, cache)
        identifier = ".".join(key.path)
        if identifier not in cache:
            cache[identifier] = self._records_of(identifier) if self._records_of else {}
        return cache[identifier]

    def evaluate(self, context: AutomationContext) -> AutomationResult:
        from marts_project.planning.planner import rebuilt_input  # planning reads the layers

        candidates = context.candidate_subset
        if self._records_of is None or candidates.is_empty:
            return AutomationResult(context, candidates)
        graph, key = context.asset_graph, context.key
        partitions_def = graph.get(key).partitions_def
        built = self._records(context, key)
        parents = {p: self._records(context, p) for p in graph.get(key).parent_keys}
        records = {key: built, **parents}
        keys = candidates.expensively_compute_partition_keys() if partitions_def else {None}
        changed = set()
        for partition in keys:
            record = built.get(partition)
            inputs = [
                (parent, p)
                for parent in parents
                for p in input_keys(
                    partitions_def, graph.get(parent).partitions_def, partition, parents[parent]
                )
            ]
            if record is None or rebuilt_input(record, inputs, records) is not None:
                changed.add(partition)
        if partitions_def is None:
            true = candidates if changed else context.get_empty_subset()
        else:
            true = candidates.compute_intersection_with_partition_keys(changed)
        return AutomationResult(context, true)


def propagate_updates(
    partitioning: str,
    retry_cron: str = RETRY_CRON,
    records_of: Callable[[str], Records] | None = None,
) -> AutomationCondition:
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
    - Given the lake's build records (`records_of`: table -> records, wired by the composition
      root), an update counts only when it changed a column this table read (`InputsChanged`).
    - Unlike `eager()`, it is not limited to the latest time window (late data restates past
      days), does not wait for *missing* upstream partitions (a week with days before the data
      starts, or a dimension over the whole history, would never run), and it never
      materializes on top of an upstream partition whose blocking checks failed.
    """
    same = AssetSelection.tag("partitioning", partitioning)
    updated = AutomationCondition.any_deps_match(AutomationCondition.newly_updated()).since(
        AutomationCondition.newly_updated()
    )
    if records_of is not None:  # a failed attempt (e.g. published, then serving failed) retries
        changed = InputsChanged(records_of) | AutomationCondition.execution_failed()
        updated = updated & changed
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


def automated(assets_def: AssetsDefinition, records_of: Callable[[str], Records] | None):
    """`assets_def` with its automation condition, attached by the composition root (the layers
    define what a table is, not when it runs): a raw table is requested by the landing sensor
    and the schedules and retries a failed partition (`retry_failed`); every other table
    follows its inputs (`propagate_updates`), judging updates by the lake's build records."""

    def wired(spec):
        if spec.key.path[0] == "raw":
            return spec.replace_attributes(automation_condition=retry_failed())
        partitioning = spec.tags.get("partitioning", "none")
        return spec.replace_attributes(
            automation_condition=propagate_updates(partitioning, records_of=records_of)
        )

    return assets_def.map_asset_specs(wired)
