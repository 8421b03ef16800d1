"""The automation loop without a daemon: tick the landing sensor and the automation conditions
through Dagster's own evaluation APIs and execute what they request, until nothing is left.

This is what the daemon does on its own (sensor daemon + automation sensor); `marts sync`, tests
and the headless demo use it to converge deterministically in one process. The conditions
themselves (`conditions.py`) guarantee the order: a table is only requested once the tables it
reads have been updated, so the runs of one tick never depend on each other.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from dagster import (
    AssetKey,
    DagsterInstance,
    Definitions,
    build_sensor_context,
    evaluate_automation_conditions,
)

from marts_project.core.partitions import (
    PERIODS_PER_RUN,
    contiguous_key_ranges,
    partitioning_of,
    range_tags,
)
from marts_project.execution.runs import RunOutcome, outcome_of, process_tag


class NotConvergedError(RuntimeError):
    """The loop still had work after its tick budget (e.g. a file rewritten on every tick)."""


@dataclass
class LoopState:
    """The cursors a daemon would keep between ticks."""

    sensor_cursor: str | None = None
    automation_cursor: object | None = None
    outcomes: list[RunOutcome] = field(default_factory=list)


def execute(
    defs: Definitions, instance: DagsterInstance, keys: set[AssetKey], tags: dict[str, str]
) -> RunOutcome:
    """Run the selected assets (and their checks) in process, as the run launcher would."""
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=keys)
    result = job.execute_in_process(
        instance=instance,
        tags={**tags, **process_tag()},
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        raise_on_error=False,
    )
    return outcome_of(result, job.name, len(job.graph.nodes))


def tick(
    defs: Definitions,
    instance: DagsterInstance,
    state: LoopState,
    now: dt.datetime | None = None,
) -> list[RunOutcome]:
    """One automation tick then one landing-sensor tick, with the runs they request executed.

    Automation goes first: its condition reacts to updates *since its previous evaluation*, so
    its very first evaluation only sets the baseline the sensor's runs are measured against.
    """
    outcomes = []
    evaluation = evaluate_automation_conditions(
        defs=defs, instance=instance, cursor=state.automation_cursor, evaluation_time=now
    )
    state.automation_cursor = evaluation.cursor
    for keys, key_range in _group(defs, evaluation):
        tags = {"marts/trigger": "automation"}
        if key_range:
            tags |= range_tags(*key_range)
        outcomes.append(execute(defs, instance, keys, tags))

    sensor = defs.resolve_sensor_def("landing_sensor")
    with build_sensor_context(
        instance=instance, cursor=state.sensor_cursor, definitions=defs, resources=defs.resources
    ) as context:
        data = sensor.evaluate_tick(context)
    state.sensor_cursor = data.cursor
    for request in data.run_requests or []:
        tags = {**request.tags, "dagster/run_key": request.run_key or ""}
        outcomes.append(execute(defs, instance, set(request.asset_selection), tags))
    state.outcomes += outcomes
    return outcomes


def converge(
    defs: Definitions,
    instance: DagsterInstance,
    state: LoopState | None = None,
    max_ticks: int = 30,
    now: dt.datetime | None = None,
) -> LoopState:
    """Tick until a tick requests nothing (the marts are up to date with the landing zone, or
    what is left waits for its retry time)."""
    state = state or LoopState()
    for number in range(max_ticks):
        if not tick(defs, instance, state, now) and number > 0:
            return state
    raise NotConvergedError(
        f"automation still had work after {max_ticks} ticks ({len(state.outcomes)} runs); "
        "landing files may be changing while it runs. Run `marts sync` again."
    )


def _group(defs: Definitions, evaluation) -> list[tuple[set[AssetKey], tuple[str, str] | None]]:
    """Requested asset partitions as runs, in dependency order: one run per depth in the asset
    graph, partitioning and contiguous key range (a run never reads what a later one writes;
    within a run Dagster orders the steps)."""
    graph = defs.resolve_asset_graph()
    depth: dict[AssetKey, int] = {}

    def depth_of(key: AssetKey) -> int:
        if key not in depth:
            parents = graph.get(key).parent_keys
            depth[key] = 1 + max((depth_of(p) for p in parents), default=-1)
        return depth[key]

    by_range: dict[tuple, set[AssetKey]] = defaultdict(set)
    for key in graph.get_all_asset_keys():
        requested = evaluation.get_requested_partitions(key)
        if not requested:
            continue
        partitions_def = graph.get(key).partitions_def
        if partitions_def is None:
            by_range[(depth_of(key), 0, None)].add(key)
            continue
        chunk = PERIODS_PER_RUN[partitioning_of(partitions_def)]
        for key_range in contiguous_key_ranges(partitions_def, requested, chunk):
            by_range[(depth_of(key), id(partitions_def), key_range)].add(key)
    return [(keys, key_range) for (_, _, key_range), keys in sorted(by_range.items(), key=_order)]


def _order(item: tuple) -> tuple:
    (level, _, key_range), _keys = item
    return (level, key_range or ("", ""))
