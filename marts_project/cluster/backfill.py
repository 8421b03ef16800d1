"""A backfill on the cluster deployment: the runs the embedded deployment would run, queued.

`marts backfill` plans a range as `jobs.refresh_runs` plans it for both deployments (daily runs
sized by the landing bytes they read, then the weeks, months and dimensions holding those days)
and submits each run through the webserver (Dagster's GraphQL client) to the run queue, from
where the daemon hands it to a Celery worker. A run goes in once every run holding an asset it
reads (of another partitioning: day chunks are independent of each other) has succeeded, within
a poll (half a second) of it, so the automation sensor finds the next layer already queued (in
progress, to Dagster) and does not request it too (a tick inside that half second requests the
same partitions once more; every write is idempotent, so that costs a run, not a wrong row). A
run that failed and that Dagster's run retries re-execute is followed to its last attempt.

Why not a Dagster backfill: its backfill policy cuts a range by a count of days fixed when the
definitions load, so a backfill of small days ran three times the runs the embedded deployment
runs for the same bytes (each with its fixed cost: its checks, a commit per table, each step's
bookkeeping). The runs carry the `marts/backfill` tag, by which the UI's run list shows them
together; backfills launched from the UI are still Dagster's, cut by `MARTS_CHUNK_DAYS` (which
`marts cluster up` sizes from the landing zone when it is not set: `commands.py`).
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import requests
from dagster import AssetKey, DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from marts_project.core.partitions import range_tags
from marts_project.execution.jobs import RefreshRun

BACKFILL_TAG = "marts/backfill"
WILL_RETRY_TAG = "dagster/will_retry"  # set on a failed run the run retries re-execute
PARENT_RUN_TAG = "dagster/parent_run_id"  # on a re-execution: the run it re-executes


class BackfillError(RuntimeError):
    """The webserver refused a run or could not be reached."""


# The webserver may be restarting (the supervisor starts it again within seconds of an exit,
# and it loads the code location before it answers): a submission it could not receive is
# tried again for up to this long before the backfill stops.
UNREACHABLE_FOR_SECONDS = 60.0


def _unreachable(exc: BaseException) -> bool:
    """The client could not reach the webserver (not: the webserver refused the run)."""
    return isinstance(exc, OSError) or isinstance(
        exc.__cause__, requests.exceptions.ConnectionError
    )


@dataclass
class Queued:
    """A planned run, the assets it builds and those they are computed from, its run id once
    submitted and its last attempt once that has finished."""

    run: RefreshRun
    assets: frozenset[AssetKey]
    reads: frozenset[AssetKey]
    run_id: str | None = None
    final: DagsterRun | None = None  # its last attempt, once that has finished


def new_backfill_id() -> str:
    """The `marts/backfill` tag's value that ties one command's runs together."""
    return uuid.uuid4().hex[:12]


def client(url: str) -> DagsterGraphQLClient:
    """Dagster's GraphQL client for the webserver at `url` (scheme, host, port, path)."""
    parts = urllib.parse.urlsplit(url)
    return DagsterGraphQLClient(
        parts.hostname or "127.0.0.1",
        port_number=parts.port,
        use_https=parts.scheme == "https",
        path_prefix=parts.path.rstrip("/"),
        timeout=60,
    )


RUNS_AT_ONCE = "{ instance { runQueueConfig { maxConcurrentRuns } } }"


def runs_at_once(url: str) -> int:
    """How many runs the cluster's daemon runs at once (its run queue's limit, which `marts
    cluster up --max-runs` sets in the daemon's and webserver's environment, not the CLI's),
    asked of the webserver; 1 when it sets none."""
    body = json.dumps({"query": RUNS_AT_ONCE}).encode()
    request = urllib.request.Request(
        f"{url.rstrip('/')}/graphql", body, {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
    except OSError as exc:
        raise BackfillError(f"the Dagster webserver at {url} cannot be reached: {exc}") from exc
    config = ((answer.get("data") or {}).get("instance") or {}).get("runQueueConfig") or {}
    return max(1, config.get("maxConcurrentRuns") or 1)


def submit(
    graphql: DagsterGraphQLClient,
    run: RefreshRun,
    tags: dict[str, str],
    unreachable_for: float = UNREACHABLE_FOR_SECONDS,
) -> str:
    """Queue one planned run (its job, of its assets, over its key range); its run id. A
    webserver that cannot be reached is tried again for `unreachable_for` seconds."""
    if run.key_range:
        tags = {**tags, **range_tags(*run.key_range)}
    attempts = Retrying(
        retry=retry_if_exception(_unreachable),
        stop=stop_after_delay(unreachable_for),
        wait=wait_exponential(multiplier=0.5, max=5),
        reraise=True,
    )
    try:
        return attempts(
            graphql.submit_job_execution,
            run.job.name,
            tags=tags,
            asset_selection=list(run.assets) if run.assets is not None else None,
        )
    except (DagsterGraphQLClientError, OSError) as exc:
        raise BackfillError(f"the webserver did not queue {run.job.name}: {exc}") from exc


def last_attempt(instance: DagsterInstance, run_id: str) -> DagsterRun | None:
    """The run's last attempt once it has finished (a failed run the run retries re-execute
    is followed to its re-execution); None while an attempt is queued, running or about to be
    launched."""
    run = instance.get_run_by_id(run_id)
    while run is not None and run.is_finished:
        if run.status != DagsterRunStatus.FAILURE or not instance.run_retries_enabled:
            return run
        will_retry = run.tags.get(WILL_RETRY_TAG)
        if will_retry is None:
            return None  # the failure is being recorded: whether it retries comes next
        if will_retry != "true":
            return run
        retries = instance.get_runs(RunsFilter(tags={PARENT_RUN_TAG: run.run_id}), limit=1)
        if not retries:
            return None  # the retry daemon has not launched it yet
        run = retries[0]
    return None


def queue(asset_graph, runs: Sequence[RefreshRun]) -> list[Queued]:
    """The planned runs with the assets each builds (a whole job's when it names none) and
    what those are computed from."""
    queued = []
    for run in runs:
        assets = frozenset(run.assets or run.job.selection.resolve(asset_graph))
        reads = frozenset().union(*(asset_graph.get_ancestor_asset_keys(key) for key in assets))
        queued.append(Queued(run, assets, reads))
    return queued


def run_all(
    graphql: DagsterGraphQLClient,
    instance: DagsterInstance,
    queued: Sequence[Queued],
    tags: dict[str, str],
    on_run: Callable[[DagsterRun], None],
    on_queued: Callable[[Queued], None] = lambda _: None,
    poll_seconds: float = 0.5,
) -> bool:
    """Submit each planned run once the runs before it (of another job) that build what it
    reads have succeeded, telling `on_queued`, and wait for all of them, telling `on_run` of
    each last attempt as it finishes. Once a run has failed, no further run is submitted
    (those queued finish). True when every run succeeded."""
    failed = False
    while True:
        waiting = [e.run_id for e in queued if e.run_id is not None and e.final is None]
        runs = instance.get_runs(RunsFilter(run_ids=waiting)) if waiting else []
        ended = {run.run_id for run in runs if run.is_finished}
        for entry in queued:
            if entry.run_id in ended:
                entry.final = last_attempt(instance, entry.run_id)
                if entry.final is not None:
                    on_run(entry.final)
                    failed |= entry.final.status != DagsterRunStatus.SUCCESS
        for position, entry in enumerate(queued):
            if entry.run_id is None and not failed and _ready(queued[:position], entry):
                entry.run_id = submit(graphql, entry.run, tags)
                on_queued(entry)
        if all(e.final is not None or (e.run_id is None and failed) for e in queued):
            return not failed
        time.sleep(poll_seconds)


def _ready(earlier: Sequence[Queued], entry: Queued) -> bool:
    """Whether every earlier run of another job that builds what `entry` reads succeeded."""
    return all(
        e.final is not None and e.final.status == DagsterRunStatus.SUCCESS
        for e in earlier
        if e.run.job is not entry.run.job and e.assets & entry.reads
    )
