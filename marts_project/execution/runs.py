"""Materialize day ranges through Dagster as single runs (what the CLI and demo drive)."""

from __future__ import annotations

import datetime as dt
import gc
import multiprocessing
import os
import pickle
import socket
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from dagster import (
    AssetKey,
    AssetSelection,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    ExecuteInProcessResult,
    RunsFilter,
)

from marts_project import process
from marts_project.core.partitions import (
    CHUNK_BYTES,
    CHUNK_DAYS,
    chunk_peak_bytes,
    daily_partitions,
    partition_keys,
    range_tags,
)
from marts_project.core.processes import available_memory, started_at, usable_cores
from marts_project.execution.jobs import JUDGED_HOURLY, RefreshRun, daily_assets_job, refresh_runs
from marts_project.instance import config as instance_config
from marts_project.observability.failures import error_chain
from marts_project.resources.duck import share_of_cores, sharing_cores, use_threads


class BadDateRangeError(ValueError):
    """An operator asked for a date range that is not a range of existing daily partitions."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a termination) stopped a run; Dagster recorded it failed, so automation and
    `marts sync` build what it did not."""


class ChunkWorkerDied(RuntimeError):
    """A worker process running daily chunks ended without finishing its chunk (killed, out
    of memory)."""


@dataclass(frozen=True)
class CheckRow:
    """One asset check evaluation, for tables people read."""

    asset: str
    check: str
    severity: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class RunOutcome:
    job_name: str
    run_id: str
    success: bool
    checks_passed: int
    checks_failed: list[str]
    checks: tuple[CheckRow, ...] = ()
    partitions: str = ""  # "first..last" partition keys of a range run, "" when unpartitioned
    materialized: tuple[tuple[str, str | None], ...] = ()  # (asset, partition) built
    skipped: int = 0  # steps not run because a step they read failed


def parse_day(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise BadDateRangeError(f"{value!r} is not a date (expected YYYY-MM-DD)") from None


def partition_range(start: dt.date, end: dt.date) -> tuple[str, str]:
    """Validated first and last partition keys of the inclusive range [start, end]."""
    if end < start:
        raise BadDateRangeError(
            f"range is reversed: --start {start} is after --end {end}; give the earlier day first"
        )
    keys = set(partition_keys(daily_partitions))
    for day in (start, end):
        if day.isoformat() not in keys:
            first, last = (
                daily_partitions.get_first_partition_key(),
                daily_partitions.get_last_partition_key(),
            )
            raise BadDateRangeError(
                f"{day} is not a daily partition (partitions run {first} .. {last}; a day is "
                "a partition once it has closed)"
            )
    return start.isoformat(), end.isoformat()


def instance_for(home: Path) -> DagsterInstance:
    """A persistent Dagster instance (the one `dagster dev` shows with DAGSTER_HOME=home),
    its dagster.yaml written by marts (`instance/config.py`; one an operator wrote is kept).

    Two commands started at once on a fresh folder would both create Dagster's SQLite schema
    and crash; a file lock makes the second wait until the first has created it.
    """
    with instance_config.locked(home):
        instance_config.write("embedded", home, others_allowed=True)
        instance = DagsterInstance.from_config(str(home))
        instance.get_runs(limit=1)  # run, event and schedule storage exist from here on
        instance.all_instigator_state()
    fail_orphaned_runs(instance)
    return instance


PROCESS_TAG = "marts/process"  # host:pid of the process running an in-process run


def process_tag() -> dict[str, str]:
    """The tag that lets a later command tell that an in-process run's process is gone."""
    return {PROCESS_TAG: f"{socket.gethostname()}:{os.getpid()}"}


def fail_orphaned_runs(instance: DagsterInstance) -> list[str]:
    """Mark failed every in-process run of this host whose process is gone (a CLI killed
    mid-run leaves its run STARTED for good: no daemon watches an in-process run), so that
    automation retries its partitions and no command calls them in progress. A pid the
    kernel has given to a newer process does not keep a run alive."""
    unfinished = [DagsterRunStatus.STARTED, DagsterRunStatus.STARTING]
    failed = []
    for record in instance.get_run_records(RunsFilter(statuses=unfinished)):
        run = record.dagster_run
        host, _, pid = run.tags.get(PROCESS_TAG, "").rpartition(":")
        if host != socket.gethostname() or not pid.isdigit():
            continue
        started = started_at(int(pid))
        if started is not None and started <= record.create_timestamp.timestamp() + 1:
            continue  # its process is still running it
        instance.report_run_failed(
            run, f"the process that ran it ({host} pid {pid}) ended without finishing it"
        )
        failed.append(run.run_id)
    return failed


def run_job(
    defs: Definitions,
    instance: DagsterInstance,
    job,
    key_range: tuple[str, str] | None,
    log_level: str | None = None,
    asset_selection: list[AssetKey] | None = None,
    progress: bool = False,
) -> RunOutcome:
    """One in-process run of `job` (a job of `jobs.py`, or of `asset_selection` within it) over
    a partition key range (or unpartitioned); with `progress`, a line per step as it finishes
    (a failed one with its error), and Dagster's own log on stderr only at `log_level`;
    without, Dagster's log at `log_level` or WARNING, which is then how a failure shows."""
    tags = {
        "marts/trigger": "cli",
        **process_tag(),
        **(range_tags(*key_range) if key_range else {}),
    }
    job_name = job.name
    job = defs.resolve_job_def(job_name)
    if asset_selection:  # the selected assets with the checks the job runs on them
        keys = set(asset_selection)
        graph = defs.resolve_asset_graph()
        checks = {c for c in graph.asset_check_keys if c.asset_key in keys} - JUDGED_HOURLY
        job = job.get_subset(asset_selection=keys, asset_check_selection=checks)
    loggers: dict = {}
    if log_level or not progress:
        loggers["console"] = {"config": {"log_level": log_level or "WARNING"}}
    if progress:
        loggers["progress"] = {"config": {"total_steps": len(job.graph.nodes)}}
    result = job.execute_in_process(
        instance=instance, tags=tags, run_config={"loggers": loggers}, raise_on_error=False
    )
    outcome = outcome_of(result, job_name, len(job.graph.nodes))
    interrupted = _interrupted(result)
    _release_outputs(result)
    del result
    if interrupted:
        span = f" {'..'.join(key_range)}" if key_range else ""
        raise RunInterrupted(
            f"run {outcome.run_id[:8]} of {job_name}{span} stopped and recorded failed: "
            "`marts sync` or the automation builds what it did not"
        )
    # A finished run's Arrow tables are kept alive by reference cycles (step contexts, events)
    # until a full garbage collection, which Python runs rarely: without this, a chunked
    # backfill's RSS grew ~300 MB a chunk at 50,000 rows/day until one happened. A collection
    # costs ~0.2 s, so runs of a single partition (small refreshes) skip it.
    if key_range and key_range[0] != key_range[1]:
        gc.collect()
    return replace(outcome, partitions="..".join(key_range) if key_range else "")


def _release_outputs(result: ExecuteInProcessResult) -> None:
    """Empty the dict in which `execute_in_process` captured every step's output.

    Dagster 1.13 keeps the step contexts of a process's first run alive for good: its records
    compile their checked `__new__` on first use and keep the calling frame's locals, a step
    context among them, and that context holds the run's output capture, i.e. every Arrow table
    the run produced. Measured: 134 MB of Arrow held after a 7-day run at 50,000 rows/day, and a
    chunked backfill's peak jumping by as much at its second chunk. There is no public way to
    run in process without capturing outputs, so the captured values are dropped here (the
    result's `_output_capture`; we never read outputs from the result).
    """
    captured = getattr(result, "_output_capture", None)
    if isinstance(captured, dict):
        captured.clear()


INTERRUPTS = {"KeyboardInterrupt", "DagsterExecutionInterruptedError"}


def _interrupted(result: ExecuteInProcessResult) -> bool:
    """The run, or a step of it, failed because it was interrupted: between steps Dagster
    fails the run itself, in a step the step (DuckDB's report of an interrupted query is
    raised as the interrupt by every step body: `duck.keeps_interrupts`)."""
    for event in result.all_events:
        if event.event_type_value not in ("STEP_FAILURE", "PIPELINE_FAILURE"):
            continue
        error = getattr(event.event_specific_data, "error", None)
        if error is not None and INTERRUPTS & set(error_chain(error)[1]):
            return True
    return False


def outcome_of(result: ExecuteInProcessResult, job_name: str, steps: int) -> RunOutcome:
    """Success and check results of a finished in-process run of `steps` steps; the steps that
    never started (they read a failed step: Dagster logs a line, no event) count as skipped."""
    rows = []
    for event in result.all_events:
        if event.event_type_value != "ASSET_CHECK_EVALUATION":
            continue
        ev = event.event_specific_data
        detail = ev.description or ""
        if not detail and "result" in ev.metadata:
            detail = str(ev.metadata["result"].value)
        rows.append(
            CheckRow(
                ev.asset_key.to_user_string(),
                ev.check_name,
                ev.severity.value,
                ev.passed,
                detail,
            )
        )
    # A write its blocking audits refused never reaches its checks' evaluation events (they
    # stay planned): each refusal counts as a failed ERROR check, named by its first line.
    for event in result.all_events:
        if event.event_type_value != "STEP_FAILURE":
            continue
        why, classes = error_chain(event.event_specific_data.error)
        if "AuditFailedError" in classes:
            asset = (event.step_key or "?").replace("__", "/")
            rows.append(CheckRow(asset, "audit_refused_write", "ERROR", False, why))
    # A failed WARN-severity check (e.g. freshness) is reported, not counted as a failure.
    failed = [f"{r.asset}:{r.check}" for r in rows if not r.passed and r.severity == "ERROR"]
    passed = sum(r.passed for r in rows)
    built = tuple(
        (m.asset_key.to_user_string(), m.partition)
        for event in result.all_events
        if event.event_type_value == "ASSET_MATERIALIZATION"
        and (m := event.event_specific_data.materialization) is not None
    )
    skipped = steps - sum(event.event_type_value == "STEP_START" for event in result.all_events)
    return RunOutcome(
        job_name, result.run_id, result.success, passed, failed, tuple(rows), "", built, skipped
    )


def materialize_days(
    defs: Definitions, instance: DagsterInstance, start: dt.date, end: dt.date
) -> RunOutcome:
    """One run of the daily job (raw to daily marts) over the days [start, end]."""
    return run_job(defs, instance, daily_assets_job, partition_range(start, end))


def materialize_lineage(
    defs: Definitions, instance: DagsterInstance, target: AssetKey, start: dt.date, end: dt.date
) -> RunOutcome:
    """One run of a daily asset and everything upstream of it over the days [start, end]."""
    keys = AssetSelection.assets(target).upstream().resolve(defs.resolve_asset_graph())
    return run_job(
        defs, instance, daily_assets_job, partition_range(start, end), asset_selection=list(keys)
    )


@dataclass(frozen=True)
class ChunkWorkers:
    """Daily chunks run `count` at a time: in the command's process and `count - 1` worker
    processes, each worker opening the deployment (its definitions and its persistent Dagster
    instance) once with `open`, a picklable callable.

    Each process holds one chunk in memory at a time, so a backfill's memory is `count` chunks'.
    The workers are spawned, not forked: the command's process holds DuckDB, SQLite and catalog
    connections that a forked child must not share.
    """

    count: int
    open: Callable[[], tuple[Definitions, DagsterInstance]]


def default_workers(range_bytes: int, budget: int = CHUNK_BYTES) -> int:
    """Daily runs side by side when the operator did not say (`--workers`): one per usable core
    (a container's quota included) once the range's landing files fill more than one run's
    `budget`, as many as the memory available now (a container's limit included) holds at a
    run's peak each; one run alone otherwise.

    Why not always: a second process's start (imports, definitions, instance: about 3 s) and
    the fixed cost of a second run are worth it only when there is that much to share: 28 days
    at 50,000 ad rows a day (129 MB, one run) took 10.6 and 9.9 s cut in two side by side,
    against 9.7 and 8.4 s in one; 30 days at 100,000 rows a day (686 MB) took 32.8 s against
    43.2 s (BENCHMARKS.md, figures 1 and 1a)."""
    if range_bytes <= budget:
        return 1
    memory = available_memory()
    fits = memory // chunk_peak_bytes(budget) if memory is not None else 1
    return max(1, min(usable_cores(), fits))


_WORKER: dict[str, tuple[Definitions, DagsterInstance]] = {}


def _start_worker(
    open_deployment: Callable[[], tuple[Definitions, DagsterInstance]], threads: int
) -> None:
    use_threads(threads)  # before anything computes: the workers share the host's cores
    _WORKER["deployment"] = open_deployment()


def _run_chunk(key_range: tuple[str, str], assets, options: dict) -> RunOutcome:
    """A daily chunk in a worker process (the job objects are not sent: each process has them)."""
    defs, instance = _WORKER["deployment"]
    with process.interruptible():
        return _run(defs, instance, RefreshRun(daily_assets_job, key_range, assets), options)


def _run(defs: Definitions, instance: DagsterInstance, run: RefreshRun, options: dict):
    selection = list(run.assets) if run.assets is not None else None
    return run_job(defs, instance, run.job, run.key_range, asset_selection=selection, **options)


def _chunks_side_by_side(
    defs: Definitions,
    instance: DagsterInstance,
    chunks: list[RefreshRun],
    workers: ChunkWorkers,
    options: dict,
    record: Callable[[RunOutcome], bool],
) -> bool:
    """Run the daily chunks `workers.count` at once, in order of their days; once one fails no
    further chunk starts (those running finish). True when every chunk succeeded.

    This process runs chunks too, beside `workers.count - 1` worker processes: a worker's start
    (its imports, definitions and instance: about 3 s) is what this process already paid, and
    it overlaps the first chunk here. While they run side by side each process takes its share
    of the cores (`duck.use_threads`)."""
    pending = list(reversed(chunks))
    lock = threading.Lock()
    state = {"failed": False, "stopped": False}  # either: no further chunk starts
    errors: list[BaseException] = []

    def take() -> RefreshRun | None:
        with lock:
            return None if state["failed"] or state["stopped"] or not pending else pending.pop()

    def done(outcome: RunOutcome) -> None:
        if not record(outcome):
            with lock:
                state["failed"] = True

    helpers = min(workers.count, len(chunks)) - 1
    share = share_of_cores(helpers + 1)
    with sharing_cores(share), _worker_pool(helpers, workers.open, share) as pool:

        def feed_workers() -> None:
            """Keep the workers busy with the next chunks; record each as it finishes."""
            running: set[Future[RunOutcome]] = set()
            try:
                while True:
                    while len(running) < helpers and (chunk := take()) is not None:
                        running.add(pool.submit(_run_chunk, chunk.key_range, chunk.assets, options))
                    if not running:
                        return
                    finished, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        done(future.result())
            except BaseException as exc:  # interrupted, or a worker process died
                with lock:
                    state["failed"] = True
                errors.append(exc)
                wait(running)

        chunk = take()  # the earliest days run here: the workers are still starting
        feeder = threading.Thread(target=feed_workers, name="chunk-workers")
        feeder.start()
        try:
            while chunk is not None:
                done(_run(defs, instance, chunk, options))
                chunk = take()
        except KeyboardInterrupt as exc:  # Ctrl-C: the workers had it too; theirs are joined
            errors.insert(0, exc)
        finally:
            with lock:
                state["stopped"] = True  # this process stopped taking chunks (or was stopped)
            feeder.join()
        if errors:  # the command ends here: its workers first (and their queues' semaphores)
            pool.shutdown(wait=True)
    if interrupts := [e for e in errors if isinstance(e, KeyboardInterrupt)]:
        stopped = [str(e) for e in interrupts if isinstance(e, RunInterrupted)]
        raise RunInterrupted("; ".join(stopped)) if stopped else interrupts[0]
    if errors:
        if isinstance(errors[0], BrokenProcessPool):
            raise ChunkWorkerDied(
                "a worker process ended before its chunk did (killed, or out of memory: "
                "--workers 1 runs one chunk at a time); its run is recorded failed when the "
                "next command starts, and `marts sync` builds what it did not"
            ) from errors[0]
        raise errors[0]
    return not state["failed"]


@contextmanager
def _worker_pool(
    count: int, open_deployment: Callable[[], tuple[Definitions, DagsterInstance]], threads: int
) -> Iterator[ProcessPoolExecutor]:
    """`count` spawned worker processes, each with the deployment open, on `threads` threads.

    Once the block is done with them they are told to exit and left to it: waiting for a
    worker to exit (freeing a chunk's heap and its imports) put 1.3 s between the last daily
    chunk and the first weekly run at 30 days x 100,000 rows, 0.3 s without. Every chunk has
    ended by then (the block waits for them), so an exiting worker holds no lock or write."""
    pool = ProcessPoolExecutor(
        count,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=process.start_spawned,
        initargs=(pickle.dumps(partial(_start_worker, open_deployment, threads)),),
    )
    try:
        yield pool
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def refresh_days(
    defs: Definitions,
    instance: DagsterInstance,
    start: dt.date,
    end: dt.date,
    chunk_days: int = CHUNK_DAYS,
    on_outcome: Callable[[RunOutcome], None] | None = None,
    progress: bool = False,
    log_level: str | None = None,
    workers: ChunkWorkers | None = None,
    select: Collection[AssetKey] | None = None,
    day_bytes: Mapping[dt.date, int] | None = None,
) -> list[RunOutcome]:
    """Everything the days [start, end] feed (of `select` only, when given), run as
    `jobs.refresh_runs` plans it: the daily job over chunks of at most `chunk_days` days and,
    with `day_bytes`, at most CHUNK_BYTES of landing files (one run each, so memory is bounded
    by a chunk, not by the range; with `workers`, that many chunks run at once), then the weeks
    and months containing them, then the dimensions and views; checks included.

    Later runs are skipped once one fails, so nothing builds on a failed partition.
    `on_outcome` hears of each run as it finishes; `progress` prints each step as it finishes.
    """
    partition_range(start, end)
    options = {"progress": progress, "log_level": log_level}
    outcomes: list[RunOutcome] = []

    def record(outcome: RunOutcome) -> bool:
        outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
        return outcome.success

    at_once = workers.count if workers else 1
    graph = defs.resolve_asset_graph()
    runs = refresh_runs(graph, start, end, chunk_days, select, day_bytes=day_bytes, at_once=at_once)
    chunks = [r for r in runs if r.job is daily_assets_job]
    if workers and workers.count > 1 and len(chunks) > 1:
        if not _chunks_side_by_side(defs, instance, chunks, workers, options, record):
            return outcomes
    else:
        for run in chunks:
            if not record(_run(defs, instance, run, options)):
                return outcomes
    for run in runs:
        if run.job is not daily_assets_job and not record(_run(defs, instance, run, options)):
            return outcomes
    return outcomes
