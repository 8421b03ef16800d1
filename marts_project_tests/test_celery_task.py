"""A cluster worker process keeps one Dagster instance for all the runs it runs, on kept
PostgreSQL connections, instead of a new instance and a new connection per read and write; so
does the daemon; and a worker runs a run on the code as it is now, not as it was when the
worker first loaded it."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    job,
    op,
    reconstructable,
)

# Private: the instance reference a run's task carries, as the cluster's launcher sends it.
from dagster._serdes import serialize_value

from marts_project.cluster import supervisor
from marts_project.execution.runs import instance_for
from marts_project.instance.celery_task import QUEUE, TASK_EXECUTE_RUN, client, worker_instance
from marts_project.instance.config import POSTGRES
from marts_project_tests.conftest import code_package, pg_connect


def kept_connections(database: str) -> int:
    """Connections to `database` held open by other sessions, idle between queries."""
    with pg_connect() as admin, admin.cursor() as cur:
        cur.execute(
            "select count(*) from pg_stat_activity where datname = %s and state = 'idle'",
            [database],
        )
        return cur.fetchone()[0]


def test_a_worker_process_reuses_one_instance_and_keeps_its_connections(database, tmp_path):
    (tmp_path / "dagster.yaml").write_text(
        "storage:\n  postgres:\n    postgres_url: "
        f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}\n"
        "telemetry:\n  enabled: false\n"
    )
    with DagsterInstance.from_config(str(tmp_path)) as submitting:
        ref = submitting.get_ref()
        first = worker_instance(ref)
        for _ in range(3):  # three steps' reads of their run
            assert worker_instance(ref) is first
            assert worker_instance(ref).get_run_by_id("no-such-run") is None
        assert kept_connections(database) >= 1  # not one connection per query, closed after
        first.dispose()


def test_a_kept_connection_the_server_closed_is_replaced_before_use(database, tmp_path):
    """After PostgreSQL restarts (or drops idle sessions), a worker's next read must work: a
    kept connection that died is replaced, not used and failed with."""
    (tmp_path / "dagster.yaml").write_text(
        "storage:\n  postgres:\n    postgres_url: "
        f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}\n"
        "telemetry:\n  enabled: false\n"
    )
    with DagsterInstance.from_config(str(tmp_path)) as submitting:
        worker = worker_instance(submitting.get_ref())
        assert worker.get_run_by_id("no-such-run") is None
        assert kept_connections(database) >= 1
        with pg_connect() as admin, admin.cursor() as cur:  # what a restart does to sessions
            cur.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s",
                [database],
            )
        assert worker.get_run_by_id("no-such-run") is None
        assert worker.get_runs(limit=1) == []
        worker.dispose()


def test_the_daemon_keeps_its_postgresql_connections(database, tmp_path, monkeypatch):
    """The daemon writes each run's plan when it creates the run (an event per asset and
    partition) and reads the storages on every tick: on kept connections, not one per query."""
    from marts_project.instance import daemon
    from marts_project.instance.marts_instance import MartsInstance

    (tmp_path / "dagster.yaml").write_text(
        "storage:\n  postgres:\n    postgres_url: "
        f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}\n"
        "instance_class:\n  module: marts_project.instance.marts_instance\n"
        "  class: MartsInstance\ntelemetry:\n  enabled: false\n"
    )
    monkeypatch.setattr(MartsInstance, "long_lived", False)  # restored after the test
    seen = []

    def dagster_daemon() -> int:  # what `dagster-daemon run` does first: open the instance
        with DagsterInstance.from_config(str(tmp_path)) as instance:
            assert isinstance(instance, MartsInstance)
            assert instance.get_run_by_id("no-such-run") is None
            seen.append(kept_connections(database))
        return 0

    monkeypatch.setattr(daemon, "dagster_daemon", dagster_daemon)
    assert daemon.main() == 0
    assert seen and seen[0] >= 1


def test_a_worker_stores_each_materialization_on_its_kept_connections(
    database, tmp_path, monkeypatch
):
    """Before storing a materialization's data and code versions, Dagster asks whether their
    table exists, on a second connection while the first holds the event's transaction: with a
    kept pool of one, that connection was opened and closed for every materialization (20 ms
    an event against 6). The deployments' PostgreSQL event log asks once per process."""
    import psycopg2

    monkeypatch.setenv(
        "MARTS_DAGSTER_PG_URL", f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"
    )
    (tmp_path / "dagster.yaml").write_text(POSTGRES + "telemetry:\n  enabled: false\n")
    opened = []
    connect = psycopg2.connect
    monkeypatch.setattr(psycopg2, "connect", lambda *a, **k: opened.append(1) or connect(*a, **k))
    with DagsterInstance.from_config(str(tmp_path)) as submitting:
        worker = worker_instance(submitting.get_ref())

        def materialize(day: int) -> None:
            worker.report_runless_asset_event(
                AssetMaterialization(
                    asset_key="fact",
                    partition=f"2026-11-{day:02d}",
                    tags={"dagster/data_version": f"v{day}", "dagster/code_version": "c1"},
                )
            )

        materialize(1)  # the first opens what the pool keeps
        opened.clear()
        for day in range(2, 22):
            materialize(day)
        assert opened == []
        assert (
            worker.get_latest_materialization_event(AssetKey("fact")).tags["dagster/data_version"]
            == "v21"
        )
        worker.dispose()


CODE = """
import os
import time
from pathlib import Path

from dagster import job, op

from marts_project.deployment import executor_for


@op
def write_version() -> None:
    (Path(__file__).parent.parent / "ran").write_text(f"{{VERSION}} in {{os.getpid()}}")


@job(executor_def=executor_for("celery"))  # as the cluster runs it: in the worker's process
def versioned() -> None:
    write_version()


@op
def wait_a_minute() -> None:
    time.sleep(60)


@job(executor_def=executor_for("celery"))
def slow() -> None:
    wait_a_minute()

VERSION = "{version}"
"""


def send_to_the_cluster(job, instance: DagsterInstance) -> DagsterRun:
    """Send a run of `job` to the Celery workers, as the cluster's launcher does."""
    run = instance.create_run_for_job(
        job_def=job.get_definition(), job_code_origin=job.get_python_origin()
    )
    client().send_task(
        TASK_EXECUTE_RUN, args=[serialize_value(instance.get_ref()), run.run_id], queue=QUEUE
    )
    return run


def wait_until(instance: DagsterInstance, run_id: str, done, seconds: float = 180) -> DagsterRun:
    """The run once `done(run)`; fail if that takes longer than `seconds`."""
    deadline = time.monotonic() + seconds
    while not done(run := instance.get_run_by_id(run_id)):
        assert time.monotonic() < deadline, f"run {run_id} not there within {seconds} s: {run}"
        time.sleep(0.2)
    return run


@pytest.fixture
def worker(tmp_path, rabbitmq_vhost, monkeypatch):
    """One Celery worker, started as `marts cluster up` starts each, on a fresh virtual host,
    with a code package it may run (`edited_cluster_code.jobs`, as CODE says) and an instance."""
    package = code_package(
        tmp_path, "edited_cluster_code", CODE.format(version="first"), monkeypatch
    )
    monkeypatch.setenv(
        "MARTS_CELERY_BROKER", f"pyamqp://guest:guest@127.0.0.1:5672/{rabbitmq_vhost}"
    )
    monkeypatch.setenv("MARTS_CELERY_BACKEND", "redis://127.0.0.1:6379/1")
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        supervisor.commands(workers=1, port=0)["worker-1"], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield package, instance_for(tmp_path / "home")
    finally:
        process.terminate()
        process.wait(60)
        log.close()


@pytest.mark.system
def test_a_worker_runs_each_run_on_the_code_as_edited(worker):
    """A Celery worker builds the definitions once per process: after an edit of a mart's SQL
    or code, its runs must run the edited code, not the code it loaded first."""
    package, instance = worker
    from edited_cluster_code.jobs import versioned

    ran = []
    for version in ("first", "second, edited"):
        (package / "jobs.py").write_text(CODE.format(version=version))
        run = send_to_the_cluster(reconstructable(versioned), instance)
        assert wait_until(instance, run.run_id, lambda r: r.is_finished).is_success
        written, pid = (package.parent / "ran").read_text().rsplit(" in ", 1)
        assert written == version
        ran.append(pid)
    assert ran[0] != ran[1]  # a new worker process loaded the edited code


@pytest.mark.system
def test_a_run_a_worker_is_running_is_canceled_when_terminated(worker):
    """Terminating a run (the UI's *Terminate*) stops it in the worker: the run ends CANCELED
    within seconds, not after its step's minute, and the worker takes the next run."""
    from edited_cluster_code.jobs import slow, versioned

    from marts_project.instance.celery_task import CeleryRunLauncher

    _, instance = worker
    launcher = CeleryRunLauncher()
    launcher.register_instance(instance)
    run = send_to_the_cluster(reconstructable(slow), instance)
    wait_until(instance, run.run_id, lambda r: r.status == DagsterRunStatus.STARTED, 120)
    time.sleep(1)  # into its step
    assert launcher.terminate(run.run_id)
    canceled = wait_until(instance, run.run_id, lambda r: r.is_finished, 30)
    assert canceled.status == DagsterRunStatus.CANCELED
    after = send_to_the_cluster(reconstructable(versioned), instance)
    assert wait_until(instance, after.run_id, lambda r: r.is_finished).is_success


@op
def nothing() -> None:
    """A step that does nothing."""


@job
def tiny() -> None:
    nothing()


def test_run_monitoring_judges_only_runs_a_worker_on_its_own_host_took(tmp_path):
    """The daemon sees the processes of its own host: a run whose worker there died is failed
    (its retry follows); one taken by a worker on another host is neither judged nor
    signalled by pid."""
    from dagster._core.events import EngineEventData
    from dagster._core.launcher import WorkerStatus

    from marts_project.instance.celery_task import CeleryRunLauncher
    from marts_project.instance.run_launcher import HOST, WORKER

    instance = instance_for(tmp_path / "home")
    launcher = CeleryRunLauncher()
    launcher.register_instance(instance)
    gone = subprocess.Popen(["true"])
    gone.wait()
    for host, expected in ((socket.gethostname(), WorkerStatus.FAILED), ("elsewhere", None)):
        run = instance.create_run_for_job(job_def=tiny)
        taken = EngineEventData({WORKER: f"marts-worker-1@{host}", HOST: host})
        instance.report_engine_event("Run taken", run, taken)
        instance.report_engine_event("Started", run, EngineEventData({"pid": gone.pid}))
        health = launcher.check_run_worker_health(run)
        assert health.status == (expected or WorkerStatus.UNKNOWN), health
        if expected is None:  # nor signalled: its pid is another host's, not a process here
            assert not launcher.terminate(run.run_id)
            assert not instance.get_run_by_id(run.run_id).is_finished
