"""How `marts backfill` drives the cluster, without one: which planned run is queued when,
and which attempt of a run counts, with the webserver and the instance stood in for."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
import requests
from dagster import DagsterRun, DagsterRunStatus
from dagster_graphql import DagsterGraphQLClientError

from marts_project.cluster.backfill import (
    PARENT_RUN_TAG,
    WILL_RETRY_TAG,
    BackfillError,
    queue,
    run_all,
    submit,
)
from marts_project.definitions import build_definitions
from marts_project.execution.jobs import refresh_runs
from marts_project.settings import Settings

pytestmark = pytest.mark.quick  # the unit tier: `pytest -m quick`

SUCCESS, FAILURE = DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE


class FakeCluster:
    """The webserver and the instance at once: a queued run ends at the caller's next poll,
    as `outcome` says for its job and first day (one status, or a failure then its retry's)."""

    def __init__(self, outcome, reported: list[DagsterRun]) -> None:
        self.outcome, self.reported = outcome, reported
        self.runs: dict[str, DagsterRun] = {}
        self.queued: list[tuple[str, str | None, int]] = []  # (job, first day, runs reported)
        self.ids = (f"run{n}" for n in itertools.count())
        self.run_retries_enabled = True

    def submit_job_execution(self, job_name, tags, asset_selection=None) -> str:
        first = tags.get("dagster/asset_partition_range_start")
        self.queued.append((job_name, first, len(self.reported)))
        first_attempt = parent = None
        for attempt, status in enumerate(statuses := self.outcome(job_name, first)):
            run_id = next(self.ids)
            run_tags = dict(tags, **({PARENT_RUN_TAG: parent} if parent else {}))
            if status == FAILURE:
                run_tags[WILL_RETRY_TAG] = str(attempt < len(statuses) - 1).lower()
            self.runs[run_id] = DagsterRun(job_name, run_id=run_id, status=status, tags=run_tags)
            first_attempt, parent = first_attempt or run_id, run_id
        return first_attempt

    def get_run_by_id(self, run_id):
        return self.runs.get(run_id)

    def get_runs(self, filters, limit=None):
        if filters.run_ids:
            return [self.runs[run_id] for run_id in filters.run_ids]
        wanted = filters.tags[PARENT_RUN_TAG]
        return [r for r in self.runs.values() if r.tags.get(PARENT_RUN_TAG) == wanted][:limit]


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """A 14-day range planned as the CLI plans it on a cluster running two runs at once."""
    defs = build_definitions(Settings.local(tmp_path_factory.mktemp("lake") / "data"))
    graph = defs.resolve_asset_graph()
    runs = refresh_runs(graph, dt.date(2026, 9, 1), dt.date(2026, 9, 14), chunk_days=7)
    return graph, runs


def _backfill(planned, outcome):
    graph, runs = planned
    finished: list[DagsterRun] = []
    cluster = FakeCluster(outcome, finished)
    queued = queue(graph, runs)
    ok = run_all(cluster, cluster, queued, {}, finished.append, poll_seconds=0)
    return ok, cluster, finished, queued


def test_day_chunks_go_together_and_what_reads_them_only_after_they_succeeded(planned):
    ok, cluster, finished, _ = _backfill(planned, lambda job, first: [SUCCESS])
    assert ok
    jobs = [job for job, _, _ in cluster.queued]
    assert jobs[:2] == ["daily_assets_job", "daily_assets_job"]
    assert set(jobs[2:]) == {"weekly_marts_job", "monthly_marts_job", "dimensions_job"}
    # both chunks were queued at once; the rest only once both had finished
    assert [seen for _, _, seen in cluster.queued] == [0, 0] + [2] * (len(jobs) - 2)
    assert len(finished) == len(planned[1])


def test_a_run_the_run_retries_re_execute_counts_by_its_last_attempt(planned):
    def outcome(job, first):
        return [FAILURE, SUCCESS] if first == "2026-09-08" else [SUCCESS]

    ok, cluster, finished, queued = _backfill(planned, outcome)
    assert ok
    retried = next(q for q in queued if q.run.key_range == ("2026-09-08", "2026-09-14"))
    assert retried.final.status == SUCCESS and retried.final.tags[PARENT_RUN_TAG] == retried.run_id
    assert all(run.status == SUCCESS for run in finished)


def test_after_a_failed_run_nothing_that_reads_it_is_queued(planned):
    def outcome(job, first):
        return [FAILURE] if first == "2026-09-01" else [SUCCESS]

    ok, cluster, finished, queued = _backfill(planned, outcome)
    assert not ok
    assert [job for job, _, _ in cluster.queued] == ["daily_assets_job", "daily_assets_job"]
    assert sorted(run.status.value for run in finished) == ["FAILURE", "SUCCESS"]
    assert [q.run.job.name for q in queued if q.run_id is None] == [
        "weekly_marts_job",
        "monthly_marts_job",
        "dimensions_job",
    ]


class Webserver:
    """A webserver that answers each submission as `answers` says, in order: a run id, or an
    exception to raise (a refusal, or a connection error as the GraphQL client wraps it)."""

    def __init__(self, *answers) -> None:
        self.answers, self.calls = list(answers), 0

    def submit_job_execution(self, job_name, tags, asset_selection=None) -> str:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, str):
            return answer
        raise answer


def _not_listening() -> DagsterGraphQLClientError:
    try:
        raise requests.exceptions.ConnectionError("connection refused")
    except requests.exceptions.ConnectionError as exc:
        try:
            raise DagsterGraphQLClientError("Error when connecting to url") from exc
        except DagsterGraphQLClientError as wrapped:
            return wrapped


def test_a_restarting_webserver_is_asked_again_until_it_queues_the_run(planned):
    webserver = Webserver(_not_listening(), _not_listening(), "run-1")
    assert submit(webserver, planned[1][0], {}) == "run-1"
    assert webserver.calls == 3


def test_a_run_the_webserver_refuses_or_a_webserver_gone_for_good_stops_the_backfill(planned):
    refusing = Webserver(DagsterGraphQLClientError("JobNotFoundError", "no such job"))
    with pytest.raises(BackfillError, match="JobNotFoundError"):
        submit(refusing, planned[1][0], {})
    assert refusing.calls == 1  # a refusal is not asked again

    gone = Webserver(*[_not_listening() for _ in range(20)])
    with pytest.raises(BackfillError, match="did not queue daily_assets_job"):
        submit(gone, planned[1][0], {}, unreachable_for=0.5)
    assert 1 < gone.calls < 20
