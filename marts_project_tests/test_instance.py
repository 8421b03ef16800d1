"""The embedded Dagster instance keeps every event of every process that writes to it: runs made
at the same time by another process and by a forked child all land whole in its one event log."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, job, op
from dagster._core.events import JobFailureData, RunFailureReason
from dagster._core.storage.tags import PARENT_RUN_ID_TAG, ROOT_RUN_ID_TAG, WILL_RETRY_TAG
from dagster._core.utils import make_new_run_id

from marts_project.execution.runs import instance_for
from marts_project.instance.config import render
from marts_project.instance.event_log import PooledSqliteEventLogStorage

RUNS_EACH = 4
TINY = """
import sys
from dagster import job, op
from marts_project.execution.runs import instance_for

@op
def one():
    return 1

@job
def tiny():
    one()

instance = instance_for(__import__("pathlib").Path(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    assert tiny.execute_in_process(instance=instance, tags={"writer": "other process"}).success
"""


@op
def one() -> int:
    return 1


@job
def tiny() -> None:
    one()


def _runs(instance: DagsterInstance, writer: str) -> None:
    for _ in range(RUNS_EACH):
        assert tiny.execute_in_process(instance=instance, tags={"writer": writer}).success


def _forked_runs(instance: DagsterInstance) -> None:
    pool = instance.event_log_storage._engine.pool
    assert pool.checkedin() == 0, "the child got its parent's SQLite connections"
    _runs(instance, "child")


def test_concurrent_writers_and_a_forked_child_keep_every_event(tmp_path: Path):
    home = tmp_path / "dagster_home"
    instance = instance_for(home)
    assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
    _runs(instance, "before the fork")  # the pool holds connections the child must not reuse

    other = subprocess.Popen([sys.executable, "-c", TINY, str(home), str(RUNS_EACH)])
    child = multiprocessing.get_context("fork").Process(target=_forked_runs, args=(instance,))
    child.start()
    _runs(instance, "parent")
    child.join(timeout=120)
    assert child.exitcode == 0
    assert other.wait(timeout=120) == 0

    with instance_for(home) as fresh:  # what a new process reads back
        runs = fresh.get_runs()
        assert sorted(r.tags["writer"] for r in runs) == sorted(
            ["before the fork", "child", "parent", "other process"] * RUNS_EACH
        )
        for run in runs:
            assert run.status == DagsterRunStatus.SUCCESS
            kinds = [e.dagster_event_type for e in fresh.all_logs(run.run_id) if e.is_dagster_event]
            assert kinds[0] == DagsterEventType.RUN_START
            assert kinds[-1] == DagsterEventType.RUN_SUCCESS
            assert kinds.count(DagsterEventType.STEP_SUCCESS) == 1


def test_the_event_log_is_write_ahead_logged_and_commits_without_waiting_for_the_disk(tmp_path):
    instance = instance_for(tmp_path / "dagster_home")
    _runs(instance, "once")
    with instance.event_log_storage._engine.connect() as conn:
        assert conn.exec_driver_sql("pragma journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("pragma synchronous").scalar() == 1  # NORMAL


def _failure_as_seen_by_a_reader(instance: DagsterInstance, monkeypatch, run, reason) -> tuple:
    """Report `run` failed for `reason`; return the run's status and retry tag as a reader saw
    them the moment the failure event was stored (what the run-retry daemon reads next)."""
    seen = []
    storage = instance.event_log_storage
    store = storage.store_event

    def store_and_look(event) -> None:
        if event.dagster_event_type == DagsterEventType.RUN_FAILURE:
            now = instance.get_run_by_id(event.run_id)
            seen.append((now.status, now.tags.get(WILL_RETRY_TAG)))
        store(event)

    monkeypatch.setattr(storage, "store_event", store_and_look)
    instance.add_run(run)
    instance.report_run_failed(run, "worker gone", JobFailureData(None, failure_reason=reason))
    monkeypatch.setattr(storage, "store_event", store)
    after = instance.get_run_by_id(run.run_id)
    assert seen[0] == (after.status, after.tags[WILL_RETRY_TAG]), "changed after the event"
    return seen[0]


def _instance_of(deployment: str, home: Path, request, monkeypatch) -> DagsterInstance:
    """A fresh instance from the embedded or the cluster deployment's own dagster.yaml."""
    if deployment == "embedded":
        return instance_for(home)
    database = request.getfixturevalue("database")
    monkeypatch.setenv(
        "MARTS_DAGSTER_PG_URL", f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"
    )
    monkeypatch.setenv("MARTS_MAX_CONCURRENT_RUNS", "2")
    home.mkdir()
    (home / "dagster.yaml").write_text(render("cluster"))
    return DagsterInstance.from_config(str(home))


@pytest.mark.parametrize("deployment", ["embedded", "cluster"])
def test_a_run_failure_is_seen_only_with_the_run_failed_and_its_retry_decided(
    deployment, tmp_path, request, monkeypatch
):
    """Dagster stores a failure event before it marks the run failed and tags the retry: the
    run-retry daemon reading in between lost the retry of a crashed run for good, and a backfill
    waited on it forever. Readers of the event now see the final state, decided by Dagster's own
    rule (crashes retry, step failures do not, at most `max_retries` times)."""
    instance = _instance_of(deployment, tmp_path / "dagster_home", request, monkeypatch)
    crash, step = RunFailureReason.RUN_WORKER_RESTART, RunFailureReason.STEP_FAILURE

    def started(parent: DagsterRun | None = None) -> DagsterRun:
        """A running run; with `parent`, a retry of it (lineage kept in tags, as Dagster does)."""
        lineage = {}
        if parent:
            root = parent.root_run_id or parent.run_id
            tags = {ROOT_RUN_ID_TAG: root, PARENT_RUN_ID_TAG: parent.run_id}
            lineage = {"root_run_id": root, "parent_run_id": parent.run_id, "tags": tags}
        return DagsterRun(
            "tiny", run_id=make_new_run_id(), status=DagsterRunStatus.STARTED, **lineage
        )

    root = started()
    failed = DagsterRunStatus.FAILURE
    assert _failure_as_seen_by_a_reader(instance, monkeypatch, root, crash) == (failed, "true")
    assert _failure_as_seen_by_a_reader(instance, monkeypatch, started(), step) == (failed, "false")
    first_retry = started(root)
    assert _failure_as_seen_by_a_reader(instance, monkeypatch, first_retry, crash) == (
        failed,
        "true",
    )
    last = _failure_as_seen_by_a_reader(instance, monkeypatch, started(first_retry), crash)
    assert last == (failed, "false"), "max_retries (2) already used"
    instance.dispose()
