"""Reads what happened to a mart from the records (`slo.History`): its refreshes and failed
materializations from Dagster's event log, its sources' landing arrivals from the raw layer's
materializations and the landing zone, its rows landed and quarantined from the lake.

Failures are the failed or canceled runs that planned the mart and did not materialize it, read
through the instance's public run records and run logs (Dagster 1.13 records no
failed-materialization event for an in-process run, so the asset's own failure records cannot be
relied on).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
)

from marts_project.core.contracts import Contract, Slo
from marts_project.core.lineage import asset_key_for_table, upstream_sources, upstream_tables
from marts_project.core.partitions import DayWindow, last_closed_day, period_of, run_range
from marts_project.core.versions import LANDING_METADATA
from marts_project.marts.common import Mart
from marts_project.observability.failures import step_errors
from marts_project.observability.slo import (
    Arrival,
    Failure,
    History,
    Refresh,
    Scope,
    SloReport,
    measure,
)
from marts_project.raw.assets import QUARANTINE_TABLE
from marts_project.raw.sources import raw_table, source_specs
from marts_project.resources.iceberg import IcebergWarehouse, TableNotFoundError
from marts_project.resources.iceberg_io import table_identifier
from marts_project.resources.landing import LandingSnapshot, LandingZone, parse_key

PAGE = 1000
ALL_TIME = DayWindow(dt.date.min, dt.date.max)


def scope_of(contract: Contract) -> Scope:
    """The mart's landing sources (from its SQL down to raw) and their late days."""
    sources = upstream_sources(contract.name) if contract.kind != "view" else ()
    specs = source_specs()
    return Scope(contract, sources, {s: specs[s].late_days for s in sources})


def _when(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)


def _records(fetch, key: AssetKey, since: dt.datetime) -> list:
    """Every record `fetch` holds for `key` after `since`, oldest first, page by page."""
    records, cursor = [], None
    while True:
        page = fetch(
            AssetRecordsFilter(asset_key=key, after_timestamp=since.timestamp()),
            limit=PAGE,
            cursor=cursor,
            ascending=True,
        )
        records += page.records
        if not page.has_more:
            return records
        cursor = page.cursor


def _days(contract: Contract, partition: str | None) -> DayWindow:
    if partition is None or contract.partitions_def is None:
        return ALL_TIME
    return period_of(contract.partitions_def, dt.date.fromisoformat(partition))


def _failures(
    contract: Contract, key: AssetKey, instance: DagsterInstance, since: dt.datetime
) -> list[Failure]:
    """Runs since `since` that planned the mart and ended without materializing it: failed or
    canceled, the mart's own step refused by an audit, failed, or never run after an upstream
    step failed; and runs of the tables it is computed from (a raw run requested by the
    landing sensor) whose failure kept new data from reaching it."""
    step = "__".join(key.path)
    lineage = {asset_key_for_table(t) for t in upstream_tables(contract.name)}
    failures = []
    unfinished = RunsFilter(
        created_after=since, statuses=[DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
    )
    for record in instance.get_run_records(unfinished):
        run = record.dagster_run
        logged = instance.all_logs(run.run_id, of_type=_RUN_EVENTS)
        events = [e.dagster_event for e in logged if e.dagster_event]
        touched = {d.asset_key for d in events if d.is_asset_materialization_planned}
        written = {d.asset_key for d in events if d.is_step_materialization}
        if key in written or not (touched & (lineage | {key})):
            continue
        errors = step_errors(instance, run.run_id)
        if key not in touched:
            steps = {"__".join(k.path) for k in touched & lineage}
            upstream = next((e for e in errors if e.step in steps), None)
            if upstream is not None:
                message = f"upstream step {upstream.step} failed: {upstream.message}"
                days = _run_days(contract, run.tags)
                failures.append(Failure(_when(upstream.at), run.run_id, days, False, message))
            continue
        cause = next((e for e in errors if e.step == step), errors[0] if errors else None)
        if cause is None:
            at = record.end_time or record.update_timestamp.timestamp()
            refused, message = False, "the run ended before the mart's step ran"
        else:
            at, refused = cause.at, "AuditFailedError" in cause.classes
            message = cause.message
            if cause.step != step:
                message = f"upstream step {cause.step} failed: {message}"
        days = _run_days(contract, run.tags)
        failures.append(Failure(_when(at), run.run_id, days, refused, message))
    return failures


_RUN_EVENTS = {
    DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    DagsterEventType.ASSET_MATERIALIZATION,
}


def _run_days(contract: Contract, tags: dict[str, str]) -> DayWindow:
    """The days a run was to cover, from its partition tags (all time when it had none)."""
    covered = run_range(tags)
    if covered is None or contract.partitions_def is None:
        return ALL_TIME
    first, last = covered
    start = _days(contract, first).start
    return DayWindow(start, _days(contract, last).end)


def read_history(
    contract: Contract,
    key: AssetKey,
    instance: DagsterInstance,
    warehouse: IcebergWarehouse,
    landing: LandingZone | LandingSnapshot,
    since: dt.datetime,
    now: dt.datetime,
) -> History:
    """What happened to the mart `key` and its sources since `since` (arrivals: a week more,
    so a day due inside the window is judged against the files that fed it)."""
    scope = scope_of(contract)
    history = History()
    records = _records(instance.fetch_materializations, key, since)
    # a range run publishes its days in one commit and then records an event per day: the
    # run's first event is when all of them were served
    published: dict[str, float] = {}
    for record in records:
        published.setdefault(record.run_id, record.timestamp)
    for record in records:
        failed = record.asset_materialization.metadata.get("audits_failed")
        history.refreshes.append(
            Refresh(
                _when(published[record.run_id]),
                record.run_id,
                _days(contract, record.partition_key),
                int(failed.value) if failed is not None else 0,
            )
        )
    history.failures = _failures(contract, key, instance, since)
    arrivals_since = since - dt.timedelta(days=7)
    history.arrivals = _arrivals(scope, instance, landing, arrivals_since, now)
    history.arrivals_from = arrivals_since
    history.rows = _rows(scope, warehouse, since.date(), last_closed_day(now))
    return history


def _arrivals(
    scope: Scope,
    instance: DagsterInstance,
    landing: LandingZone | LandingSnapshot,
    since: dt.datetime,
    now: dt.datetime,
) -> list[Arrival]:
    """Every version of the sources' landing files written since `since`: as the raw builds
    that read them recorded them (the landing versions of their build records, and when each
    version was first read), and as the landing zone holds them now (read by no build yet,
    unless a build recorded that same version)."""
    written: dict[tuple[str, str], str] = {}  # (file, version) -> when it was written
    read: dict[tuple[str, str], float] = {}  # (file, version) -> when a raw build first read it
    for source in scope.sources:
        raw = asset_key_for_table(raw_table(source))
        for record in _records(instance.fetch_materializations, raw, since):
            metadata = record.asset_materialization.metadata
            times = metadata.get("landing/arrivals")
            versions: dict[str, str] = {}
            by_partition = metadata.get(LANDING_METADATA)
            for files in (by_partition.value if by_partition else {}).values():
                versions.update(files)
            for file, at in (times.value if times else {}).items():
                # a record from before versions were recorded names the version by its time
                key = (file, versions.get(file, f"written {at}"))
                written[key] = at
                read[key] = min(read.get(key, record.timestamp), record.timestamp)
    for file, (version, at) in landing.versions().items():
        written.setdefault((file, version), at.isoformat())
    arrivals = []
    for (file, version), at in written.items():
        parsed = parse_key(file)
        when = dt.datetime.fromisoformat(at)
        if parsed and parsed[0] in scope.sources and since <= when <= now:
            first_read = read.get((file, version))
            read_at = _when(first_read) if first_read is not None else None
            arrivals.append(Arrival(parsed[0], parsed[1], when, read_at))
    return sorted(arrivals, key=lambda a: (a.at, a.source, a.file_day))


def _rows(
    scope: Scope, warehouse: IcebergWarehouse, first: dt.date, last: dt.date
) -> dict[dt.date, tuple[int, int]]:
    """Rows published and quarantined per day over the mart's sources, days [first, last]."""
    end = last + dt.timedelta(days=1)
    published: Counter[dt.date] = Counter()
    quarantined: Counter[dt.date] = Counter()
    specs = source_specs()
    for source in scope.sources:
        column = specs[source].date_column
        try:
            identifier = table_identifier(asset_key_for_table(raw_table(source)))
            days = warehouse.read(identifier, column, first, end, columns=(column,))
        except TableNotFoundError:
            continue
        published.update(days.column(column).to_pylist())
    try:
        rejected = warehouse.read(
            QUARANTINE_TABLE, "partition_date", first, end, columns=("partition_date", "source")
        )
    except TableNotFoundError:
        rejected = None
    if rejected is not None and rejected.num_rows:
        mine = rejected.filter(
            pc.is_in(rejected["source"], value_set=pa.array(scope.sources, pa.string()))
        )
        quarantined.update(mine.column("partition_date").to_pylist())
    days = set(published) | set(quarantined)
    return {d: (published[d], quarantined[d]) for d in sorted(days)}


def mart_slo(
    mart: Mart,
    instance: DagsterInstance,
    warehouse: IcebergWarehouse,
    landing: LandingZone | LandingSnapshot,
    now: dt.datetime,
) -> SloReport:
    """The mart's SLO report at `now`, measured from the records of its window."""
    contract = mart.contract
    window = dt.timedelta(days=(contract.slo or Slo()).window_days)
    history = read_history(
        contract, mart.asset.key, instance, warehouse, landing, now - window, now
    )
    return measure(scope_of(contract), history, now)
