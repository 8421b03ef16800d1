"""What the `marts` commands do, as plain functions: the CLI parses its arguments, calls one of
these and prints what it returns or what they report through `echo`. Here it is decided how a
backfill runs (serially, in worker processes, or queued on the cluster), what
`sync` remembers between runs, and how a SQL query reaches a serving database."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial

import duckdb
from dagster import (
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    deserialize_value,
    serialize_value,
)

from marts_project.automation import loop
from marts_project.core.lineage import asset_key_for_table
from marts_project.core.partitions import (
    CHUNK_BYTES,
    CHUNK_DAYS,
    SIZED_CHUNK_MAX_DAYS,
    days_in_budget,
    run_range,
)
from marts_project.definitions import build_definitions
from marts_project.deployment import open_resource
from marts_project.execution.jobs import refresh_runs
from marts_project.execution.runs import (
    ChunkWorkers,
    default_workers,
    instance_for,
    partition_range,
    refresh_days,
)
from marts_project.observability.failures import failed_partitions, step_errors
from marts_project.planning.selection import SelectionError, select
from marts_project.raw.sources import raw_table, source_specs
from marts_project.resources.audit_trail import audited
from marts_project.resources.duck import connect
from marts_project.resources.landing import LandingSnapshot, LandingZone
from marts_project.resources.read_only_query import QueryRefused, QueryTimeout, run_read_only
from marts_project.resources.serving import ServingDatabase
from marts_project.settings import Settings, acting_user
from marts_project.settings import chunk_days as chunk_days_setting
from marts_project.simulator import SimConfig, land

Echo = Callable[[str], None]


class OperatorError(Exception):
    """A request the operator can correct (unknown mart, no serving database, bad query):
    printed as one line, exit status 2, nothing written."""


def count(n: int, thing: str) -> str:
    """`1 row`, `2 rows`, `1,204 rows`."""
    return f"{n:,} {thing}" if n == 1 else f"{n:,} {thing}s"


def seed_days(
    settings: Settings, days: int, rows_per_day: int, seed: int, end: dt.date, echo: Echo
) -> None:
    """Write simulated landing files for the `days` days ending with `end`."""
    first = end - dt.timedelta(days=days - 1)
    every = [first + dt.timedelta(days=i) for i in range(days)]
    cfg = SimConfig(seed=seed, rows_per_day=rows_per_day)
    landed = land(open_resource(settings, "landing"), every, dt.datetime.now(dt.UTC), cfg)
    echo(
        f"seeded {len(landed)} landing files for {every[0]} .. {every[-1]} under {settings.landing}"
    )


def open_embedded(settings: Settings) -> tuple[Definitions, DagsterInstance]:
    """The embedded deployment's definitions and persistent instance (what a worker opens)."""
    return build_definitions(settings), instance_for(settings.instance_home)


def instance_of(settings: Settings) -> DagsterInstance:
    """The deployment's Dagster instance: the cluster's (DAGSTER_HOME), or the embedded one."""
    return DagsterInstance.get() if settings.cluster else instance_for(settings.instance_home)


def selected(defs: Definitions, selectors: tuple[str, ...]):
    """The asset keys `--select` names (None without one), or an operator error naming the
    selector that names nothing."""
    if not selectors:
        return None
    try:
        return select(defs.resolve_asset_graph(), selectors)
    except SelectionError as exc:
        raise OperatorError(f"--select: {exc}") from None


@dataclass(frozen=True)
class RunOptions:
    """How a backfill runs: at most how many days per daily run (None: as many as
    CHUNK_BYTES of landing files allow, up to SIZED_CHUNK_MAX_DAYS), daily runs side by side
    (None: as many as the range's landing bytes and the host's cores and memory make worth it),
    Dagster's own log level, and the `--select`ion (empty: everything)."""

    chunk_days: int | None = None
    workers: int | None = None  # None: `runs.default_workers` (one per core for a large range)
    log_level: str | None = None  # Dagster's own log on stderr (off: each step prints)
    selectors: tuple[str, ...] = ()


def backfill_days(
    settings: Settings,
    defs: Definitions,
    instance: DagsterInstance,
    start: dt.date,
    end: dt.date,
    options: RunOptions,
    echo: Echo,
    day_bytes: Mapping[dt.date, int],
    chosen: set[AssetKey] | None,
) -> int:
    """Refresh a day range everywhere it flows (daily tables, weeks, months, dimensions; of
    the `--select`ion `chosen` only), printing each step and each run as it finishes, then a
    tally; 1 if a run or an ERROR check failed. `day_bytes` (each day's landing bytes the
    selection reads) sizes the daily runs."""
    chunk_days = options.chunk_days or SIZED_CHUNK_MAX_DAYS  # bytes and runs at once cut further
    if settings.cluster:
        if options.workers not in (None, 1):
            raise OperatorError(
                "on the cluster the daemon decides how many runs go at once (`marts cluster up "
                "--max-runs`); --workers is for the embedded deployment"
            )
        return _cluster_backfill(
            settings, defs, instance, start, end, chunk_days, echo, day_bytes, chosen
        )
    range_bytes = sum(size for day, size in day_bytes.items() if start <= day <= end)
    workers = options.workers or default_workers(range_bytes)
    side_by_side = f", {workers} at a time" if workers > 1 else ""
    if workers > 1 and options.workers is None:
        side_by_side += " (the default for a range larger than one run; --workers N to choose)"
    what = f"{len(chosen)} selected tables" if chosen is not None else "everything"
    echo(
        f"backfilling {start} .. {end} ({what}): daily tables in runs of at most "
        f"{count(chunk_days, 'day')} and {CHUNK_BYTES / 1e6:g} MB of landing files"
        f"{side_by_side}, then weeks, months and dimensions"
    )
    began = time.perf_counter()

    def report(outcome) -> None:
        status = "succeeded" if outcome.success else "FAILED"
        echo(
            f"  {outcome.job_name:<18} {outcome.partitions:<22} {status:<9} run "
            f"{outcome.run_id[:8]}  checks passed {outcome.checks_passed}, failed "
            f"{len(outcome.checks_failed)} {' '.join(outcome.checks_failed)}"
        )

    outcomes = refresh_days(
        defs,
        instance,
        start,
        end,
        chunk_days,
        on_outcome=report,
        progress=True,
        log_level=options.log_level.upper() if options.log_level else None,
        workers=ChunkWorkers(workers, partial(open_embedded, settings)),
        select=chosen,
        day_bytes=day_bytes,
    )
    echo(tally(outcomes, time.perf_counter() - began))
    failed = sum((not o.success) + len(o.checks_failed) for o in outcomes)
    return 0 if failed == 0 else 1


def cluster_chunk_days(env: Mapping[str, str]) -> int:
    """MARTS_CHUNK_DAYS for every process of a cluster about to start, which a backfill policy
    (the UI's and the schedules' backfills) is cut by: the operator's, else as many days as
    read at most MARTS_CHUNK_MB of landing files at the largest of the landing zone's latest
    days, every source (`partitions.days_in_budget`). `marts cluster up` fixes it for all of
    them: a backfill policy is part of the definitions, which the daemon, the webserver and the
    workers must agree on. A landing zone that cannot be listed leaves the default."""
    if (own := chunk_days_setting(env, default=None)) is not None:
        return own
    try:
        snapshot = open_resource(Settings.from_env(env), "landing").snapshot()
    except Exception:  # any failure to list (or no settings yet): the default
        return CHUNK_DAYS
    return days_in_budget(snapshot.day_bytes(list(source_specs())))


def tally(outcomes: list, seconds: float) -> str:
    """The closing line of a build, as `dbt build` ends: partitions built, checks passed,
    warned and failed, steps skipped after a failure, runs, wall time."""
    checks = [row for o in outcomes for row in o.checks]
    return (
        f"Done in {seconds:.1f} s. BUILT={sum(len(o.materialized) for o in outcomes)} "
        f"PASS={sum(r.passed for r in checks)} "
        f"WARN={sum(not r.passed and r.severity == 'WARN' for r in checks)} "
        f"ERROR={sum(not r.passed and r.severity == 'ERROR' for r in checks)} "
        f"SKIP={sum(o.skipped for o in outcomes)} "
        f"RUNS={len(outcomes)} RUNS_FAILED={sum(not o.success for o in outcomes)}"
    )


def _cluster_backfill(
    settings: Settings,
    defs: Definitions,
    instance: DagsterInstance,
    start: dt.date,
    end: dt.date,
    chunk_days: int,
    echo: Echo,
    day_bytes: Mapping[dt.date, int],
    chosen: set[AssetKey] | None,
) -> int:
    """The runs the embedded deployment would run for the range (daily runs sized by their
    landing bytes, at least one for each run the cluster runs at once), queued on the cluster
    through its webserver (`cluster/backfill.py`); a line per run as it finishes; 1 unless
    every run succeeded."""
    # imported here: Dagster's GraphQL client (gql, requests) is 0.4 s of every command's start
    from marts_project.cluster import backfill as cluster_backfill

    url = settings.webserver_url
    try:
        at_once = cluster_backfill.runs_at_once(url)
    except cluster_backfill.BackfillError as exc:
        raise OperatorError(f"{exc}; is the cluster up (`marts cluster status`)?") from None
    graph = defs.resolve_asset_graph()
    runs = refresh_runs(graph, start, end, chunk_days, chosen, day_bytes=day_bytes, at_once=at_once)
    planned = cluster_backfill.queue(graph, runs)
    backfill_id = cluster_backfill.new_backfill_id()
    what = f"{len(chosen)} selected tables" if chosen is not None else "everything"
    echo(
        f"backfill {backfill_id} of {start} .. {end} ({what}) on {url}: {len(runs)} runs, "
        f"daily runs of at most {count(chunk_days, 'day')} and {CHUNK_BYTES / 1e6:g} MB of landing "
        f"files, {at_once} at a time, then weeks, months and dimensions"
    )

    def report(run) -> None:
        covered = run_range(run.tags)
        days = f"{covered[0]} .. {covered[1]}" if covered else ""
        echo(f"  run {run.run_id[:8]} {run.job_name:<22} {days:<24} {run.status.value}")
        for failed in step_errors(instance, run.run_id):
            echo(f"    {failed.step} failed: {failed.message}")

    def on_queued(entry) -> None:
        days = " .. ".join(entry.run.key_range or ())
        echo(f"  run {entry.run_id[:8]} {entry.run.job.name:<22} {days:<24} QUEUED")

    tags = {
        cluster_backfill.BACKFILL_TAG: backfill_id,
        "marts/trigger": "cli",
        "marts/user": acting_user(),
    }
    began = time.perf_counter()
    try:
        graphql = cluster_backfill.client(url)
        succeeded = cluster_backfill.run_all(graphql, instance, planned, tags, report, on_queued)
    except cluster_backfill.BackfillError as exc:  # runs already queued go on
        echo(
            f"backfill {backfill_id} stopped: {exc}; the runs it queued go on, and `marts "
            "sync` builds what is left"
        )
        return 1
    done = [q.final for q in planned if q.final is not None]
    ok = sum(run.status == DagsterRunStatus.SUCCESS for run in done)
    echo(
        f"backfill {backfill_id}: {ok} of {len(runs)} runs succeeded in "
        f"{time.perf_counter() - began:.1f} s"
        + (f", {len(runs) - len(done)} not run after a failure" if len(done) < len(runs) else "")
    )
    return 0 if succeeded else 1


def backfill_sources(
    defs: Definitions, chosen: set[AssetKey] | None, upstream: bool = False
) -> list[str]:
    """The landing sources whose raw tables a backfill rebuilds: all, or those of the
    selection `chosen`; with `upstream`, also those the selected tables are computed from
    (whose days its runs read, from Iceberg: what sizes its chunks)."""
    if chosen is not None and upstream:
        graph = defs.resolve_asset_graph()
        chosen = chosen.union(*(graph.get_ancestor_asset_keys(key) for key in chosen))
    return [
        s for s in source_specs() if chosen is None or asset_key_for_table(raw_table(s)) in chosen
    ]


def refuse_missing_landing(
    settings: Settings, landing: LandingSnapshot, sources: list[str], start: dt.date, end: dt.date
) -> None:
    """Refuse a backfill whose raw tables would read a landing file that is not there: the
    days of every source it rebuilds."""
    days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
    missing = [
        LandingZone.key(s, d)
        for d in days
        for s in sources
        if LandingZone.key(s, d) not in landing.files
    ]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise OperatorError(
            f"{count(len(missing), 'landing file')} missing under {settings.landing}: "
            f"{', '.join(missing[:5])}{more}; a day "
            "is built once every source it reads has delivered it (`marts seed` writes demo "
            "files; `--select` builds only some tables)"
        )


def audited_backfill(
    settings: Settings, action: str, start: dt.date, end: dt.date, options: RunOptions, echo: Echo
) -> int:
    """A backfill by hand, recorded in the audit trail with how it ended (or why it was
    refused)."""
    params = {"start": start, "end": end, "workers": options.workers or "auto"}
    params |= {"chunk_days": options.chunk_days} if options.chunk_days else {}
    params |= {"select": " ".join(options.selectors)} if options.selectors else {}
    instance = instance_of(settings)
    trail = open_resource(settings, "audit", instance)
    with audited(trail, action, f"{start}..{end}", params) as outcome:  # refusals on record too
        partition_range(start, end)  # refuse a bad range before touching anything
        defs = build_definitions(settings)
        landing = open_resource(settings, "landing").snapshot()  # one listing for both
        chosen = selected(defs, options.selectors)
        refuse_missing_landing(settings, landing, backfill_sources(defs, chosen), start, end)
        sizes = landing.day_bytes(backfill_sources(defs, chosen, upstream=True))
        code = backfill_days(settings, defs, instance, start, end, options, echo, sizes, chosen)
        outcome["result"] = "ok" if code == 0 else "failed: a run or an ERROR check failed"
    return code


@dataclass
class SyncResult:
    """What a sync did: its runs, why it stopped short (None: it converged), and the
    partitions left failed (by it or an earlier run)."""

    outcomes: list = field(default_factory=list)
    problem: str | None = None
    failed: dict[str, list[str]] = field(default_factory=dict)

    @property
    def in_sync(self) -> bool:
        return not (self.problem or self.failed or any(not o.success for o in self.outcomes))


def sync(settings: Settings) -> SyncResult:
    """Tick the landing sensor and automation until nothing is left, keeping their cursors in
    the data folder between syncs (every tick that ran, converged or not)."""
    state_file = settings.data_dir / "sync_state.json"
    state = loop.LoopState()
    if state_file.exists():
        saved = json.loads(state_file.read_text())
        state.sensor_cursor = saved["sensor_cursor"]
        state.automation_cursor = (
            deserialize_value(saved["automation_cursor"]) if saved["automation_cursor"] else None
        )
    defs, instance = build_definitions(settings), instance_for(settings.instance_home)
    result = SyncResult()
    try:
        loop.converge(defs, instance, state)
    except loop.NotConvergedError as exc:
        result.problem = str(exc)
    finally:
        automation = state.automation_cursor
        state_file.write_text(
            json.dumps(
                {
                    "sensor_cursor": state.sensor_cursor,
                    "automation_cursor": serialize_value(automation) if automation else None,
                }
            )
        )
    result.outcomes = state.outcomes
    result.failed = failed_partitions(defs, instance)
    return result


@contextlib.contextmanager
def serving_connection(
    serving: ServingDatabase, database: str
) -> Iterator[duckdb.DuckDBPyConnection]:
    """One serving database, read-only and locked down; a clear error when it is missing or
    this user may not read it."""
    path = serving.path(database)
    if not path.parent.exists():
        raise OperatorError(f"no serving database {database} at {path}: run `marts demo` first")
    try:
        con = connect(str(path), read_only=True, locked=True)
    except (duckdb.IOException, PermissionError) as exc:
        if "permission denied" in str(exc).lower():
            raise OperatorError(
                f"serving database {database}: permission denied (its readers are the members "
                "of the group MARTS_SERVING_GROUPS names for it)"
            ) from None
        raise
    with con:
        yield con


def run_query(con, text: str, timeout_seconds: float) -> tuple[list[str], list[tuple]]:
    """A query's columns and rows, run read-only with a time limit; a refused, failing or
    timed-out query is the operator's error, one line (Ctrl-C: QueryInterrupted, exit 130)."""
    try:
        return run_read_only(con, text, timeout_seconds)
    except (QueryRefused, QueryTimeout) as exc:
        refused = isinstance(exc, QueryRefused)
        raise OperatorError(f"query refused: {exc}" if refused else str(exc)) from None
    except duckdb.Error as exc:
        raise OperatorError(f"query failed: {exc}") from None
