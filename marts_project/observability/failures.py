"""Failures not yet repaired: the asset partitions whose latest attempt failed and that no
run has built since. What automation retries, and what no command may call in sync, fresh or
healthy (`marts sync`, `freshness`, `slo`, `summary`, the page)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetKey,
    AssetPartitionStatus,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    PartitionsDefinition,
)

from marts_project.core.lineage import asset_key_for_table, upstream_tables
from marts_project.core.partitions import (
    DayWindow,
    daily_partitions,
    files_feeding,
    partition_keys,
    period_of,
)

WHOLE_TABLE = "(whole table)"


def failed_partitions(defs: Definitions, instance: DagsterInstance) -> dict[str, list[str]]:
    """Asset -> partitions whose latest run failed and that no run has repaired since (what
    automation retries, and what no command may call in sync or fresh)."""
    graph = defs.resolve_asset_graph()
    return failed_of(
        instance,
        {
            key: graph.get(key).partitions_def
            for key in graph.get_all_asset_keys()
            if graph.get(key).is_materializable
        },
    )


# (run id, days judged) -> asset -> its failed partitions, as the run's first check read them
_READ_IN_RUN: dict[tuple[str, DayWindow | None], dict[AssetKey, list[str]]] = {}


def failed_in_lineage(
    table: str,
    partitions_def: PartitionsDefinition | None,
    instance: DagsterInstance,
    run_id: str | None = None,
    within: DayWindow | None = None,
) -> dict[str, list[str]]:
    """`failed_partitions` of `table` and every table it is computed from (all of them
    day-partitioned: raw, staging, intermediate), without loading the definitions; with
    `within`, only of the partitions holding a day of it (what a check judging those days
    needs: its cost follows the days judged, not the lake's years of partitions).

    With `run_id` (the checks of one run), a table's failures are read once for the run: the
    marts of a run share most of their lineage (31 tables under 94 lineage entries). A table
    of the run that a check reads is upstream of the checked mart, so its step has ended
    before the first check that reads it; what other runs do meanwhile, the next evaluation
    sees (the hourly freshness job, or the next run)."""
    keys = {asset_key_for_table(t): daily_partitions for t in upstream_tables(table)}
    assets = {**keys, asset_key_for_table(table): partitions_def}
    if run_id is None:
        return failed_of(instance, assets, within)
    if not any(run == run_id for run, _ in _READ_IN_RUN):
        _READ_IN_RUN.clear()  # another run's reads: gone
    known = _READ_IN_RUN.setdefault((run_id, within), {})
    new = {key: d for key, d in assets.items() if key not in known}
    read = failed_of(instance, new, within)
    known.update({key: read.get(key.to_user_string(), []) for key in new})
    return {key.to_user_string(): known[key] for key in sorted(assets) if known[key]}


def failed_of(
    instance: DagsterInstance,
    assets: Mapping[AssetKey, PartitionsDefinition | None],
    within: DayWindow | None = None,
) -> dict[str, list[str]]:
    """Of `assets` (key -> its partitioning), the partitions failed and not repaired (with
    `within`, of the partitions holding a day of it)."""
    failed: dict[str, list[str]] = {}
    keys_of: dict[int, list[str]] = {}  # id of a partitioning -> its keys (most assets share one)
    for key in sorted(assets):
        partitions_def = assets[key]
        if partitions_def is None:
            if _unpartitioned_failed(instance, key):
                failed[key.to_user_string()] = [WHOLE_TABLE]
            continue
        if id(partitions_def) not in keys_of:
            keys_of[id(partitions_def)] = keys_within(partitions_def, within)
        keys = keys_of[id(partitions_def)]
        status = instance.get_status_by_partition(key, keys, partitions_def) or {}
        bad = [p for p, s in status.items() if s == AssetPartitionStatus.FAILED]
        if bad:
            failed[key.to_user_string()] = sorted(bad)
    return failed


def keys_within(partitions_def: PartitionsDefinition, within: DayWindow | None) -> list[str]:
    """The partition keys of `partitions_def` holding a day of `within` (all without it).
    Keys are their period's first day in ISO form, so they compare as dates."""
    keys = partition_keys(partitions_def)
    if within is None:
        return keys
    first = period_of(partitions_def, within.start).start.isoformat()
    last = (within.end - dt.timedelta(days=1)).isoformat()
    return [k for k in keys if first <= k <= last]


def _unpartitioned_failed(instance: DagsterInstance, key: AssetKey) -> bool:
    """The latest run that planned an unpartitioned asset failed without materializing it.

    Dagster's own rule (`AutomationCondition.execution_failed`): a step that raises after an
    audit refused the write writes no ASSET_FAILED_TO_MATERIALIZE event (FACTS.md), so the
    asset record's failure field alone forgets it; the planned run's status does not."""
    planned = instance.get_latest_planned_materialization_info(key)
    if planned is None:
        return False
    run = instance.get_run_by_id(planned.run_id)
    if run is None or run.status not in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
        return False
    since = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, after_storage_id=planned.storage_id), limit=1
    )
    return not since.records


def failed_days_in_lineage(
    table: str,
    partitions_def: PartitionsDefinition | None,
    failed: Mapping[str, list[str]],
    days: list[dt.date],
    late_days: Mapping[str, int],
) -> dict[dt.date, str]:
    """Of `days`, those a failure in `table`'s lineage left unrepaired, each with the asset
    that failed: `table`'s own partition (day, week or month) holding the day, the same day of
    a table it is computed from (all day-partitioned), or a raw partition up to the source's
    `late_days` after it (that file may hold the day's late rows). An unpartitioned table's
    failure touches every day."""
    found: dict[dt.date, str] = {}
    for name in (table, *upstream_tables(table)):
        partitions = set(failed.get(asset_key_for_table(name).to_user_string(), []))
        if not partitions:
            continue
        late = late_days.get(name.removeprefix("raw_"), 0) if name.startswith("raw_") else 0
        for day in days:
            if name == table and partitions_def is not None:
                keys = {period_of(partitions_def, day).start.isoformat()}
            else:
                keys = {d.isoformat() for d in files_feeding(day, late)}
            if WHOLE_TABLE in partitions or keys & partitions:
                found.setdefault(day, asset_key_for_table(name).to_user_string())
    return found


@dataclass(frozen=True)
class StepError:
    """A step that failed in a run: when, the first line of its innermost error, and the class
    of every error in its chain (e.g. `AuditFailedError` under Dagster's wrapper)."""

    step: str
    at: float
    message: str
    classes: tuple[str, ...]


def step_errors(instance: DagsterInstance, run_id: str) -> list[StepError]:
    """Every step failure of a run, in order."""
    failures = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        message, classes = error_chain(entry.dagster_event.step_failure_data.error)
        failures.append(StepError(entry.step_key or "?", entry.timestamp, message, classes))
    return failures


def error_chain(error: Any) -> tuple[str, tuple[str, ...]]:
    """The first line of a step failure's innermost error (Dagster's serialized error, with
    its `cause`s) and the class of every error in the chain: what a person needs to read."""
    chain = []
    while error is not None:
        chain.append(error)
        error = error.cause
    lines = chain[-1].message.strip().splitlines() if chain else []
    return lines[0] if lines else "no error recorded", tuple(e.cls_name or "" for e in chain)
