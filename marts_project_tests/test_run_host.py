"""Run workers are forked from a warm run host: a launched run runs to its end in a process of
its own, which run monitoring can see; a terminated run is canceled by its worker, one
terminated before its worker started never starts, and a run after an edit of the code runs
the edited code. A spare host the daemon starts before any run takes the first run."""

from __future__ import annotations

import os
import time

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    job,
    op,
    reconstructable,
)
from dagster._core.launcher import LaunchRunContext

from marts_project.core.processes import alive
from marts_project.execution.runs import instance_for
from marts_project.instance import config, daemon, run_host
from marts_project.instance.run_launcher import LocalRunLauncher
from marts_project_tests.conftest import code_package, wait_for


@op
def one() -> int:
    return 1


@job
def quick() -> None:
    one()


@op
def a_minute() -> None:
    for _ in range(600):
        time.sleep(0.1)


@job
def long() -> None:
    a_minute()


def launched(instance: DagsterInstance, job_def) -> DagsterRun:
    """A run of `job_def` launched the way the daemon launches a queued run."""
    origin = reconstructable(job_def).get_python_origin()
    run = instance.create_run_for_job(job_def, job_code_origin=origin)
    instance.launch_run(run.run_id, workspace=None)
    return run


def test_a_launched_run_runs_in_a_worker_forked_from_the_run_host(tmp_path):
    instance = instance_for(tmp_path)
    assert isinstance(instance.run_launcher, LocalRunLauncher)
    try:
        run = launched(instance, quick)
        done = wait_for("run finished", lambda: instance.get_run_by_id(run.run_id).is_finished)
        assert done and instance.get_run_by_id(run.run_id).status == DagsterRunStatus.SUCCESS
        worker = LocalRunLauncher.worker_pid(instance, run.run_id)
        assert worker is not None and worker != os.getpid()
        wait_for("worker gone", lambda: not alive(worker), 10)  # reaped by the host

        again = launched(instance, quick)  # the same host forks the next run's worker
        wait_for("second run", lambda: instance.get_run_by_id(again.run_id).is_finished)
        assert instance.get_run_by_id(again.run_id).status == DagsterRunStatus.SUCCESS
        assert LocalRunLauncher.worker_pid(instance, again.run_id) not in (None, worker)
    finally:
        instance.run_launcher.dispose()


def test_a_spare_host_started_before_any_run_takes_the_first_run(tmp_path):
    run_host.start_spare()  # as the daemon does when it starts
    spare = run_host._SPARES[-1]
    instance = instance_for(tmp_path)
    try:
        run = launched(instance, quick)
        wait_for("run finished", lambda: instance.get_run_by_id(run.run_id).is_finished)
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.SUCCESS
        assert run_host._SPARES == [] and spare.poll() is None  # taken, and now the host
    finally:
        instance.run_launcher.dispose()
    assert spare.wait(timeout=10) == 0  # it goes with its launcher


def test_a_spare_host_ends_with_the_daemon_that_started_it_before_any_run():
    run_host.start_spare()
    spare = run_host._SPARES.pop()
    spare.stdin.close()  # the daemon's end: its pipe closes
    assert spare.wait(timeout=30) == 0


def test_the_daemon_starts_a_spare_host_only_for_an_instance_that_launches_from_one(
    tmp_path, monkeypatch
):
    for deployment, expected in (("embedded", True), ("cluster", False), ("docker", False)):
        home = tmp_path / deployment
        home.mkdir()
        (home / "dagster.yaml").write_text(config.render(deployment, home))
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        assert daemon._launches_from_a_run_host() is expected, deployment


def test_a_terminated_run_is_canceled_by_its_worker(tmp_path):
    instance = instance_for(tmp_path)
    try:
        run = launched(instance, long)
        wait_for(
            "run started",
            lambda: instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED,
        )
        worker = LocalRunLauncher.worker_pid(instance, run.run_id)
        assert instance.run_launcher.terminate(run.run_id)
        wait_for("run canceled", lambda: instance.get_run_by_id(run.run_id).is_finished, 30)
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.CANCELED
        wait_for("worker gone", lambda: not alive(worker), 10)
    finally:
        instance.run_launcher.dispose()


def test_a_run_terminated_before_its_worker_started_never_starts(tmp_path):
    instance = instance_for(tmp_path)
    origin = reconstructable(quick).get_python_origin()
    run = instance.create_run_for_job(quick, job_code_origin=origin)  # queued, not launched
    assert instance.run_launcher.terminate(run.run_id)
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.CANCELED
    try:
        instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
        wait_for("worker refused", lambda: LocalRunLauncher.worker_pid(instance, run.run_id), 30)
        time.sleep(1)
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.CANCELED
        steps = instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START)
        assert steps == []
    finally:
        instance.run_launcher.dispose()


CODE = """
from pathlib import Path
from dagster import in_process_executor, job, op

@op
def write_version() -> None:
    Path(__file__).parent.parent.joinpath("ran").write_text(VERSION)  # outside the package

@job(executor_def=in_process_executor)  # as the embedded deployment runs: in the run worker
def versioned() -> None:
    write_version()

VERSION = "{version}"
"""


def test_a_run_after_an_edit_of_the_code_runs_the_edited_code(tmp_path, monkeypatch):
    """The host loads the code once: after an edit (a mart's SQL, say) the next run must run
    the edited code, as a run started in a fresh process would."""
    package = code_package(tmp_path, "edited_location", CODE.format(version="first"), monkeypatch)
    from edited_location.jobs import versioned

    instance = instance_for(tmp_path / "home")
    try:
        for version in ("first", "second, edited"):
            (package / "jobs.py").write_text(CODE.format(version=version))
            run = launched(instance, versioned)
            wait_for("run finished", lambda r=run: instance.get_run_by_id(r.run_id).is_finished)
            assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.SUCCESS
            assert (package.parent / "ran").read_text() == version
    finally:
        instance.run_launcher.dispose()


def test_a_run_after_an_edit_that_breaks_the_code_fails_with_the_error(tmp_path, monkeypatch):
    """A run on code that no longer loads (a typo in an edited module) fails at once with the
    error in its own log, as a run started cold does; it must not wait for run monitoring to
    give up on a worker that never started."""
    package = code_package(tmp_path, "broken_location", CODE.format(version="first"), monkeypatch)
    from broken_location.jobs import versioned

    instance = instance_for(tmp_path / "home")
    try:
        (package / "jobs.py").write_text(CODE.format(version="first") + "\nVERSION = (\n")
        run = launched(instance, versioned)
        wait_for("run finished", lambda: instance.get_run_by_id(run.run_id).is_finished, 60)
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
        logged = " ".join(
            str(entry.dagster_event.engine_event_data.error or "")
            for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT)
            if entry.dagster_event and entry.dagster_event.engine_event_data
        )
        assert "SyntaxError" in logged
    finally:
        instance.run_launcher.dispose()
