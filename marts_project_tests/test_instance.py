"""The embedded Dagster instance keeps every event of every process that writes to it: runs made
at the same time by another process and by a forked child all land whole in its one event log."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, job, op

from marts_project.automation.event_log import PooledSqliteEventLogStorage
from marts_project.runs import instance_for

RUNS_EACH = 4
TINY = """
import sys
from dagster import job, op
from marts_project.runs import instance_for

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
