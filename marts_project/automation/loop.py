"""The automation loop without a daemon: tick the landing sensor and the automation conditions
through Dagster's own evaluation APIs and execute what they request, until nothing is left.

This is what the daemon does on its own (sensor daemon + automation sensor); tests and the
headless demo use it to converge deterministically in one process.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from dagster import AssetKey, DagsterInstance, Definitions, build_sensor_context
from dagster._core.definitions.declarative_automation.automation_condition_tester import (
    evaluate_automation_conditions,
)

from marts_project.partitions import range_tags
from marts_project.runs import RunOutcome, outcome_of


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
        tags=tags,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        raise_on_error=False,
    )
    return outcome_of(result, job.name)


def tick(defs: Definitions, instance: DagsterInstance, state: LoopState) -> list[RunOutcome]:
    """One automation tick then one landing-sensor tick, with the runs they request executed.

    Automation goes first: its condition reacts to updates *since its previous evaluation*, so
    its very first evaluation only sets the baseline the sensor's runs are measured against.
    """
    outcomes = []
    evaluation = evaluate_automation_conditions(
        defs=defs, instance=instance, cursor=state.automation_cursor
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
        outcomes.append(execute(defs, instance, set(request.asset_selection), request.tags))
    state.outcomes += outcomes
    return outcomes


def converge(
    defs: Definitions,
    instance: DagsterInstance,
    state: LoopState | None = None,
    max_ticks: int = 12,
) -> LoopState:
    """Tick until a tick requests nothing (the marts are up to date with the landing zone)."""
    state = state or LoopState()
    for number in range(max_ticks):
        if not tick(defs, instance, state) and number > 0:
            return state
    raise RuntimeError(f"automation did not converge in {max_ticks} ticks")


def _group(defs: Definitions, evaluation) -> list[tuple[set[AssetKey], tuple[str, str] | None]]:
    """Requested asset partitions as runs: one per partitioning and contiguous key range."""
    graph = defs.resolve_asset_graph()
    by_range: dict[tuple, set[AssetKey]] = defaultdict(set)
    for key in graph.get_all_asset_keys():
        requested = evaluation.get_requested_partitions(key)
        if not requested:
            continue
        partitions_def = graph.get(key).partitions_def
        if partitions_def is None:
            by_range[(None, None)].add(key)
            continue
        order = {k: i for i, k in enumerate(partitions_def.get_partition_keys())}
        ranked = sorted(requested, key=order.__getitem__)
        start = previous = ranked[0]
        for partition in ranked[1:] + [None]:
            if partition is not None and order[partition] == order[previous] + 1:
                previous = partition
                continue
            by_range[(id(partitions_def), (start, previous))].add(key)
            if partition is not None:
                start = previous = partition
    return [(keys, key_range) for (_, key_range), keys in by_range.items()]
