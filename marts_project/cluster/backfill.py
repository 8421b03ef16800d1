"""A backfill on the cluster deployment, launched the way the UI launches one.

The CLI asks the webserver (Dagster's GraphQL API) for one asset backfill of every table a day
range feeds: the daily tables over the range, the weeks and months containing it, and the
unpartitioned marts. The daemon splits it into runs by each asset's backfill policy (chunks
of days), queues them, runs several at once, and orders them by the asset graph.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.request
from collections.abc import Callable, Collection

from dagster import AssetKey, DagsterInstance, DagsterRun, Definitions, RunsFilter

from marts_project.execution.jobs import refresh_runs

LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { invalidOutputName }
    ... on UnauthorizedError { message }
  }
}
"""
STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status }
    ... on PythonError { message }
  }
}
"""
UNFINISHED = {"REQUESTED", "CANCELING", "FAILING"}
SUCCEEDED = {"COMPLETED", "COMPLETED_SUCCESS"}


class BackfillError(RuntimeError):
    """The webserver refused the backfill or could not be reached."""


def _graphql(url: str, query: str, variables: dict) -> dict:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(
        f"{url.rstrip('/')}/graphql", body, {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
    except OSError as exc:
        raise BackfillError(f"the Dagster webserver at {url} cannot be reached: {exc}") from exc
    if answer.get("errors"):
        raise BackfillError(f"the webserver refused the request: {answer['errors']}")
    return answer["data"]


def partitions_by_asset(
    defs: Definitions, start: dt.date, end: dt.date, select: Collection[AssetKey] | None = None
) -> list[dict]:
    """Every asset (of `select`) with the partitions the days [start, end] feed, as
    `jobs.refresh_runs` plans them, in GraphQL selector form (the daemon splits them into runs
    by each asset's backfill policy, as the runs of `refresh_runs` are split)."""
    graph = defs.resolve_asset_graph()
    every = select if select is not None else set(graph.get_all_asset_keys())
    spans: dict[AssetKey, tuple[str, str] | None] = {}
    for run in refresh_runs(graph, start, end, select=every):
        for key in run.assets or ():
            if run.key_range is None:
                spans[key] = None
            else:
                first, last = spans.get(key) or run.key_range
                spans[key] = (min(first, run.key_range[0]), max(last, run.key_range[1]))
    selection = []
    for key, span in sorted(spans.items()):
        entry: dict = {"assetKey": {"path": list(key.path)}}
        if span is not None:
            entry["partitions"] = {"range": {"start": span[0], "end": span[1]}}
        selection.append(entry)
    return selection


def launch(
    url: str,
    defs: Definitions,
    start: dt.date,
    end: dt.date,
    tags: dict,
    select: Collection[AssetKey] | None = None,
) -> str:
    """Ask the webserver for the backfill (of `select`); its id."""
    params = {
        "partitionsByAssets": partitions_by_asset(defs, start, end, select),
        "title": f"marts backfill {start} .. {end}",
        "tags": [{"key": k, "value": v} for k, v in tags.items()],
    }
    result = _graphql(url, LAUNCH, {"params": params})["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise BackfillError(f"backfill refused: {result}")
    return result["backfillId"]


def wait(
    url: str,
    instance: DagsterInstance,
    backfill_id: str,
    on_run: Callable[[DagsterRun], None],
    poll_seconds: float = 0.5,
) -> str:
    """Wait until the backfill ends, telling `on_run` of each of its runs as it finishes;
    the backfill's final status."""
    told: set[str] = set()
    while True:
        answer = _graphql(url, STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if answer["__typename"] != "PartitionBackfill":
            raise BackfillError(f"backfill {backfill_id}: {answer}")
        runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill_id}))
        for run in reversed(runs):  # oldest first
            if run.is_finished and run.run_id not in told:
                told.add(run.run_id)
                on_run(run)
        if answer["status"] not in UNFINISHED:
            return answer["status"]
        time.sleep(poll_seconds)
