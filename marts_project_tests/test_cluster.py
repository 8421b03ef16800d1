"""The cluster deployment, for real: Dagster's instance and the Iceberg catalog on PostgreSQL,
the warehouse and landing zone on S3 (moto's server over HTTP), runs on Celery workers
(RabbitMQ broker, Redis results), each started as its own process by `marts cluster up`."""

from __future__ import annotations

import collections
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from marts_project.cluster import supervisor
from marts_project.core.partitions import daily_partitions, run_range
from marts_project.core.processes import alive
from marts_project.deployment import open_resource
from marts_project.execution.runs import refresh_days
from marts_project.instance.run_launcher import WORKER
from marts_project.resources.maintenance import MaintenancePolicy, remove_orphans
from marts_project.settings import Settings
from marts_project.simulator import SimConfig, land
from marts_project_tests.conftest import Lakehouse, comparable_rows, days, free_port, new_bucket

MARTS = str(Path(sys.executable).with_name("marts"))
SIM = SimConfig(seed=23, rows_per_day=20)
LANDED = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


class Cluster:
    """A cluster deployment under test: its environment, settings and Dagster instance."""

    def __init__(self, root: Path, database: str, vhost: str, endpoint: str) -> None:
        bucket = new_bucket(endpoint, root)
        self.port = free_port()
        pg = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"
        self.home = root / "dagster_home"
        self.env = {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "MARTS_DATA_DIR": str(root / "data"),
            "MARTS_DAGSTER_PG_URL": pg,
            "MARTS_CATALOG_URI": pg,
            "MARTS_WAREHOUSE": f"s3://{bucket}/warehouse",
            "MARTS_LANDING": f"s3://{bucket}/landing",
            "MARTS_S3_ENDPOINT": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "MARTS_CELERY_BROKER": f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}",
            "MARTS_CELERY_BACKEND": "redis://127.0.0.1:6379/1",
            "MARTS_EXECUTOR": "celery",
            "MARTS_WEBSERVER_URL": f"http://127.0.0.1:{self.port}",
            "MARTS_SENSORS": "off",  # the backfill alone, not the landing sensor
        }
        self.settings = Settings.from_env(self.env)

    def marts(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(
            [MARTS, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def instance(self) -> DagsterInstance:
        """The cluster's Dagster instance (its config reads the URL from the environment)."""
        return DagsterInstance.from_config(str(self.home))

    def processes(self) -> set[int]:
        """Every live process of the cluster: those `up` started and all they started."""
        found = set()
        for process in supervisor.recorded(self.home):
            if alive(process.pid):
                found |= {process.pid, *supervisor.descendants(process.pid)}
        return found


@pytest.fixture
def cluster(tmp_path, database, rabbitmq_vhost, s3_endpoint, s3_credentials, monkeypatch):
    """A cluster of two workers, two runs at once, on fresh services; taken down afterwards with
    nothing left running."""
    deployment = Cluster(tmp_path, database, rabbitmq_vhost, s3_endpoint)
    for name in ("MARTS_DAGSTER_PG_URL", "MARTS_CELERY_BROKER", "MARTS_CELERY_BACKEND"):
        monkeypatch.setenv(name, deployment.env[name])
    monkeypatch.setenv("MARTS_MAX_CONCURRENT_RUNS", "2")
    up = deployment.marts(
        "cluster",
        "up",
        "--workers",
        "2",
        "--port",
        str(deployment.port),
        timeout=300,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield deployment
    finally:
        running = deployment.processes()
        down = deployment.marts("cluster", "down", timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
        assert not [pid for pid in running if alive(pid)]


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    return max((sum(a <= start < b for a, b in spans) for start, _ in spans), default=0)


def _worker_of(instance: DagsterInstance, run_id: str) -> str | None:
    """The Celery worker that took the run (from its log), None if none did."""
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        data = record.dagster_event.engine_event_data
        if data and WORKER in data.metadata:
            return data.metadata[WORKER].value
    return None


def test_a_two_week_backfill_runs_as_concurrent_chunks_on_two_workers(cluster, tmp_path):
    """`marts backfill` queues its runs through the webserver: the 14 days as one daily run
    for each of the two runs the cluster runs at once (7 days each), side by side on the two
    Celery workers, then the weeks, months and dimensions, all under one `marts/backfill` tag.
    Every partition is materialized exactly once, and every table equals the same days built
    by one run of the embedded deployment."""
    first = dt.date(2026, 9, 1)
    window = days(first, 14)
    land(open_resource(cluster.settings, "landing"), window, LANDED, SIM)

    started = time.monotonic()
    backfill = cluster.marts("backfill", "--start", str(window[0]), "--end", str(window[-1]))
    assert backfill.returncode == 0, backfill.stdout + backfill.stderr
    print(f"cluster: 14-day backfill in {time.monotonic() - started:.0f}s\n{backfill.stdout}")

    instance = cluster.instance()
    records = instance.get_run_records(RunsFilter(tags={"marts/trigger": "cli"}))
    assert records and all(r.dagster_run.status == DagsterRunStatus.SUCCESS for r in records)
    daily = [r for r in records if r.dagster_run.job_name == "daily_assets_job"]
    assert sorted(run_range(r.dagster_run.tags) for r in daily) == [
        (window[0].isoformat(), window[6].isoformat()),
        (window[7].isoformat(), window[-1].isoformat()),
    ]
    assert len({r.dagster_run.tags["marts/backfill"] for r in records}) == 1
    assert _max_overlap([(r.start_time, r.end_time) for r in records]) >= 2

    placed = {r.dagster_run.run_id: _worker_of(instance, r.dagster_run.run_id) for r in records}
    assert all(placed.values()), f"runs no worker took: {placed}"
    assert len(set(placed[r.dagster_run.run_id] for r in daily)) == 2, placed

    # what the Celery workers built is on record in the lake: nothing is left to build
    planned = cluster.marts("plan", timeout=300)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "up to date" in planned.stdout

    lake = Lakehouse(cluster.settings, instance)
    for spec in lake.defs.resolve_all_asset_specs():
        counts = collections.Counter(
            record.partition_key
            for record in instance.fetch_materializations(spec.key, limit=10_000).records
        )
        assert set(counts.values()) == {1}, (spec.key, counts)
        if spec.partitions_def == daily_partitions:
            assert set(counts) == {d.isoformat() for d in window}, spec.key

    with DagsterInstance.ephemeral() as embedded_instance:
        embedded = Lakehouse(Settings.local(tmp_path / "embedded"), embedded_instance)
        land(embedded.landing, window, LANDED, SIM)
        outcomes = refresh_days(embedded.defs, embedded_instance, window[0], window[-1], 14)
        assert all(o.success for o in outcomes), outcomes
        identifiers = sorted(embedded.warehouse.table_identifiers())
        assert identifiers == sorted(lake.warehouse.table_identifiers())
        for identifier in identifiers:
            assert comparable_rows(lake.warehouse, identifier, cluster.settings.landing) == (
                comparable_rows(embedded.warehouse, identifier, embedded.settings.landing)
            ), identifier


def _started_on(instance: DagsterInstance, worker: str) -> DagsterRun | None:
    """A run in progress that `worker` took and whose steps have begun."""
    for run in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        if (_worker_of(instance, run.run_id) or "").startswith(f"marts-{worker}@") and (
            instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START)
        ):
            return run
    return None


def test_a_worker_killed_mid_run_loses_nothing(cluster, tmp_path):
    """SIGKILL one worker (and its pool) while it executes a run: run monitoring sees the run's
    worker gone and fails the run, run retries re-execute it from its failure on a worker, the
    backfill completes, the supervisor starts the killed worker again, every table equals the
    embedded build (a step run twice replaced its days, it did not add to them), and the files
    the killed attempt left behind are orphans that maintenance removes."""
    window = days(dt.date(2026, 9, 1), 7)
    land(open_resource(cluster.settings, "landing"), window, LANDED, SIM)
    instance = cluster.instance()
    backfill = subprocess.Popen(
        [MARTS, "backfill", "--start", str(window[0]), "--end", str(window[-1])],
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    victim = next(p for p in supervisor.recorded(cluster.home) if p.name == "worker-1")
    deadline = time.monotonic() + 300
    while (killed := _started_on(instance, "worker-1")) is None:
        assert backfill.poll() is None and time.monotonic() < deadline, "worker-1 got no run"
        time.sleep(0.2)
    time.sleep(0.5)  # into the run's work
    os.killpg(victim.pid, signal.SIGKILL)
    output, _ = backfill.communicate(timeout=900)
    assert backfill.returncode == 0, output

    # the killed run failed, and its retry, from its failure, succeeded on a worker
    assert instance.get_run_by_id(killed.run_id).status == DagsterRunStatus.FAILURE
    retries = instance.get_runs(RunsFilter(tags={"dagster/root_run_id": killed.run_id}))
    assert [r for r in retries if r.status == DagsterRunStatus.SUCCESS], retries
    assert all(_worker_of(instance, r.run_id) for r in retries)

    # the supervisor started the killed worker again: the cluster is whole without down / up
    deadline = time.monotonic() + 120
    while True:
        worker = next(p for p in supervisor.recorded(cluster.home) if p.name == "worker-1")
        ready = Path(worker.log).read_text(errors="replace").count(" ready.")
        if worker.restarts == 1 and alive(worker.pid) and ready == 2:
            break
        assert time.monotonic() < deadline, f"worker-1 not restarted: {worker}"
        time.sleep(1)
    assert worker.pid != victim.pid
    status = cluster.marts("cluster", "status")
    assert status.returncode == 0, status.stdout
    assert "restarted 1 time" in status.stdout

    # every other run succeeded the first time
    runs = instance.get_runs(RunsFilter(tags={"marts/trigger": "cli"}))
    failed = [r.run_id for r in runs if r.status != DagsterRunStatus.SUCCESS]
    assert failed == [killed.run_id], failed
    lake = Lakehouse(cluster.settings, instance)
    with DagsterInstance.ephemeral() as embedded_instance:
        embedded = Lakehouse(Settings.local(tmp_path / "embedded"), embedded_instance)
        land(embedded.landing, window, LANDED, SIM)
        refresh_days(embedded.defs, embedded_instance, window[0], window[-1], 7)
        for identifier in sorted(embedded.warehouse.table_identifiers()):
            assert comparable_rows(lake.warehouse, identifier, cluster.settings.landing) == (
                comparable_rows(embedded.warehouse, identifier, embedded.settings.landing)
            ), identifier

    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)  # past the orphan age limit
    policy = MaintenancePolicy()
    for identifier in lake.warehouse.table_identifiers():
        table = lake.warehouse.load_table(identifier)
        remove_orphans(lake.warehouse, table, policy, later)
        assert remove_orphans(lake.warehouse, table, policy, later)[0] == 0, identifier
