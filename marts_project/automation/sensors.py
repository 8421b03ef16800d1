"""The landing sensor: what is out of date at its origin (new or rewritten landing files, code
changed, never built) requests exactly those partitions; automation carries them downstream."""

import hashlib
import json

from dagster import (
    AssetKey,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from marts_project.automation.audit_sensor import build_audit_sensor
from marts_project.core.partitions import daily_partitions, partition_keys
from marts_project.planning.planner import (
    Plan,
    Stale,
    facts_of,
    feeding_files,
    lake_records,
    make_plan,
    run_requests,
)
from marts_project.raw.sources import source_specs
from marts_project.resources.iceberg import IcebergWarehouse
from marts_project.resources.landing import LandingZone, parse_key
from marts_project.resources.serving import ServingDatabase

TOLD = "told:"  # cursor prefix of a file the sensor warned about (warned once per version)


def _unplannable(current: dict[str, str], known: set[str]) -> tuple[list[str], list[str]]:
    """Landing keys never read (not `<source>/<YYYY-MM-DD>.csv` of a known source) and those
    whose day is not a partition (yet)."""
    sources = source_specs()
    ignored, deferred = [], []
    for key in current:
        parsed = parse_key(key)
        if parsed is None or parsed[0] not in sources:
            ignored.append(key)
        elif parsed[1].isoformat() not in known:
            deferred.append(key)
    return sorted(ignored), sorted(deferred)


def build_sensors(interval_seconds: int = 30, running: bool = True) -> list:
    """The landing sensor and the automation sensor, on by default (`MARTS_SENSORS=off` starts
    them stopped, e.g. for a deployment that only runs what operators launch)."""
    status = DefaultSensorStatus.RUNNING if running else DefaultSensorStatus.STOPPED

    @sensor(
        name="landing_sensor",
        minimum_interval_seconds=interval_seconds,
        default_status=status,
        asset_selection=AssetSelection.all(),
        description="Requests what is out of date at its origin: raw days whose landing files "
        "are new or rewritten (past days too), partitions built by other code or never built, "
        "readers of a partition rebuilt after them.",
    )
    def landing_sensor(
        context: SensorEvaluationContext,
        landing: LandingZone,
        warehouse: IcebergWarehouse,
        serving: ServingDatabase,
    ):
        """Requests the origins of the plan (`planning/planner.py`): raw days whose landing
        files are new or rewritten since they were read, partitions never built or built by
        other code, readers of a partition rebuilt after them that automation has not taken.
        The records it compares with are the lake's, whoever built it, so nothing a build path
        already did is requested again. Cursor: what each origin it requested would be built
        from (so a failing one is retried by automation, not requested on every tick)."""
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        facts = facts_of(set(context.repository_def.assets_defs_by_key.values()))
        current = landing.fingerprints()
        known = set(partition_keys(daily_partitions))
        plan = make_plan(facts, lake_records(warehouse, serving, facts), current)
        cursor = {k: v for k, v in seen.items() if k.startswith(TOLD) and k[len(TOLD) :] in current}
        _warn_once(context, current, known, seen, cursor)
        todo, busy = [], running_assets(context.instance)
        for item in plan.origins:
            key, state = origin_state(item, facts, current)
            if item.asset in busy:  # a run has it: looked at again once that run ends
                if key in seen:
                    cursor[key] = seen[key]
                continue
            cursor[key] = state
            if seen.get(key) != state:
                todo.append(item)
        requests = run_requests(Plan(todo), facts)
        return SensorResult(
            run_requests=requests,
            skip_reason=None if requests else "nothing is out of date",
            cursor=json.dumps(cursor, sort_keys=True),
        )

    automation_sensor = AutomationConditionSensorDefinition(
        "automation_sensor",
        target=AssetSelection.all(),
        default_status=status,
        minimum_interval_seconds=interval_seconds,
        # where the lake's build records can be read (conditions.InputsChanged)
        use_user_code_server=True,
        description="Carries refreshed partitions downstream (propagate_updates on every table).",
    )
    return [landing_sensor, automation_sensor, build_audit_sensor(interval_seconds, running)]


def running_assets(instance: DagsterInstance) -> set[AssetKey]:
    """The assets of every run not finished yet (queued or running): automation or a person
    may have asked for them already, so the sensor waits for the run to end."""
    unfinished = [
        DagsterRunStatus.QUEUED,
        DagsterRunStatus.NOT_STARTED,
        DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED,
    ]
    return {
        key
        for run in instance.get_runs(RunsFilter(statuses=unfinished))
        for key in run.asset_selection or ()
    }


def origin_state(item: Stale, facts, current: dict[str, str]) -> tuple[str, str]:
    """(cursor key, what the origin would be built from now): its code version, and for a raw
    day the versions of the landing files that feed it."""
    asset = facts[item.asset]
    key = f"{item.asset.to_user_string()}|{item.partition or ''}"
    state = asset.code
    if asset.source is not None and item.partition:
        files = feeding_files(asset.source, item.partition, current)
        state += ":" + hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
    return key, state


def _warn_once(context, current, known, seen, cursor) -> None:
    """Warn once per file version of landing files that are never read or not yet a day."""
    ignored, deferred = _unplannable(current, known)
    new = {k for k in (*ignored, *deferred) if seen.get(TOLD + k) != current[k]}
    cursor |= {TOLD + k: current[k] for k in (*ignored, *deferred)}
    ignored = [k for k in ignored if k in new]
    deferred = [k for k in deferred if k in new]
    if ignored:
        context.log.warning(
            f"ignored {len(ignored)} landing files that are not "
            f"<source>/<YYYY-MM-DD>.csv of a known source: {', '.join(ignored[:10])}"
        )
    if deferred:
        first = daily_partitions.get_first_partition_key()
        early = [k for k in deferred if parse_key(k)[1].isoformat() < first]
        later = [k for k in deferred if k not in early]
        if early:
            context.log.error(
                f"{len(early)} landing files are for days before the first partition "
                f"({first}) and are never built: {', '.join(early[:10])}"
            )
        if later:
            context.log.warning(
                f"{len(later)} landing files are for days that have not closed yet; they "
                f"are built once their day is a partition: {', '.join(later[:10])}"
            )
