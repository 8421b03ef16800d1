"""Fixtures: throwaway local warehouses, a moto S3 server over HTTP, and an ephemeral Dagster."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from dagster import DagsterInstance, Definitions
from moto.server import ThreadedMotoServer

from marts_project.definitions import build_definitions
from marts_project.deployment import open_resource
from marts_project.execution.runs import RunOutcome, materialize_days
from marts_project.settings import Settings
from marts_project.simulator import FAR_FUTURE, SimConfig, land

warnings.filterwarnings("ignore", message=".*is currently in beta.*")

# Fixed, closed days so tests never depend on today's date.
DAY = dt.date(2026, 10, 5)
SIM = SimConfig(seed=11, rows_per_day=120)
# After every test day, also the days counted back from today: their final revisions. (A fixed
# date here stopped landing the days of clock-relative tests once today passed it.)
FINAL = FAR_FUTURE


# Test files whose tests start many processes each and wait on them with time limits (the
# cluster, the daemon): pytest-xdist runs them one at a time, on one worker, while the other
# worker takes the rest. (xdist's own `xdist_group` mark does nothing under pytest 9: it renames
# the item through an attribute pytest 9 no longer reads.)
ONE_AT_A_TIME = frozenset({"test_cluster.py", "test_daemon.py"})
# Test files whose tests share a lake built once per module (a module-scoped fixture): each runs
# on one worker as one unit, so the lake is built once, not once on each worker.
BUILT_ONCE = frozenset(
    {
        "test_marts.py",
        "test_browser.py",
        "test_access.py",
        "test_serving_domains.py",
        "test_versions.py",
    }
)


# Test files that run the product as people do, in processes of its own (the daemon, the
# cluster, `dagster dev` in chromium, the README's commands): the `system` tier. With `quick`
# (pure functions, marked in each file) the rest is the in-process Dagster tier:
# `pytest -m "not quick and not system"`.
SYSTEM = frozenset(
    {"test_cluster.py", "test_daemon.py", "test_browser.py", "test_readme.py", "test_time_zones.py"}
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SYSTEM:
            item.add_marker(pytest.mark.system)


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Each test its own unit of work, except the files of ONE_AT_A_TIME (one unit together)
    and of BUILT_ONCE (a unit each)."""
    from xdist.scheduler import LoadScopeScheduling

    class OneAtATimeScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
            if file in ONE_AT_A_TIME:
                return "one at a time"
            return file if file in BUILT_ONCE else nodeid

    return OneAtATimeScheduling(config, log)


def days(start: dt.date, count: int) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(count)]


def comparable_rows(warehouse, identifier: str, landing: str) -> list[str]:
    """A table's rows, sorted, without the refresh time, with landing paths made relative:
    what two builds of the same days by different deployments or schedules must agree on."""
    table = warehouse.read(identifier)
    table = table.drop_columns([c for c in table.column_names if c == "_last_refreshed_at"])
    rows = []
    for row in table.to_pylist():
        if isinstance(row.get("_source_file"), str):
            row["_source_file"] = row["_source_file"].removeprefix(landing)
        rows.append(repr(sorted(row.items())))
    return sorted(rows)


class Lakehouse:
    """One deployment under test: settings, its definitions and resources, a Dagster instance."""

    def __init__(self, settings: Settings, instance: DagsterInstance) -> None:
        self.settings = settings
        self.instance = instance
        self.defs: Definitions = build_definitions(settings)
        self.warehouse = open_resource(settings, "warehouse")
        self.landing = open_resource(settings, "landing")

    def seed(self, first: dt.date, count: int, as_of: dt.datetime = FINAL) -> None:
        land(self.landing, days(first, count), as_of, SIM)

    def run(self, start: dt.date, end: dt.date | None = None) -> RunOutcome:
        outcome = materialize_days(self.defs, self.instance, start, end or start)
        assert outcome.success, f"run {outcome.run_id} failed"
        return outcome

    def mart(self, name: str = "marketing.mkt_campaign_performance_fact"):
        return self.warehouse.read(name)

    def serving(self):
        return open_resource(self.settings, "serving")


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def lakehouse(tmp_path: Path, instance: DagsterInstance) -> Lakehouse:
    return Lakehouse(Settings.local(tmp_path / "data"), instance)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API (moto's server) on a loopback port, reached over HTTP by s3fs/boto."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def new_bucket(endpoint: str, folder: Path) -> str:
    """A new bucket on the S3 server at `endpoint`, named after a test's own folder."""
    bucket = f"marts-{folder.name.lower().replace('_', '-')[-40:]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    return bucket


def s3_lakehouse_at(tmp_path: Path, instance: DagsterInstance, endpoint: str) -> Lakehouse:
    """A lakehouse whose warehouse and landing zone live in a new bucket reached at `endpoint`
    (credentials come from the environment, as in production)."""
    bucket = new_bucket(endpoint, tmp_path)
    local = Settings.local(tmp_path / "data")
    settings = Settings(
        data_dir=local.data_dir,
        warehouse=f"s3://{bucket}/warehouse",
        catalog_uri=local.catalog_uri,
        landing=f"s3://{bucket}/landing",
        s3_endpoint=endpoint,
    )
    return Lakehouse(settings, instance)


@pytest.fixture
def s3_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture
def s3_lakehouse(
    tmp_path: Path, instance: DagsterInstance, s3_endpoint: str, s3_credentials: None
) -> Lakehouse:
    return s3_lakehouse_at(tmp_path, instance, s3_endpoint)


def required_service(name: str, exc: Exception) -> None:
    """Skip a test whose local service is missing, unless CI requires them (it has them all)."""
    if os.environ.get("MARTS_REQUIRE_POSTGRES"):
        raise exc
    pytest.skip(f"no {name} here ({exc}); CI sets MARTS_REQUIRE_POSTGRES and has it")


def pg_connect(database: str = "postgres"):
    psycopg2 = pytest.importorskip("psycopg2")
    return psycopg2.connect(
        host="127.0.0.1", port=5432, user="postgres", dbname=database, connect_timeout=3
    )


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh database on the PostgreSQL at 127.0.0.1:5432, dropped afterwards."""
    try:
        admin = pg_connect()
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server here"
        required_service("PostgreSQL on 127.0.0.1:5432", exc)
    admin.autocommit = True
    name = f"marts_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f"create database {name}")
    yield name
    with admin.cursor() as cur:
        cur.execute(f"drop database if exists {name} with (force)")
    admin.close()


@pytest.fixture
def rabbitmq_vhost() -> Iterator[str]:
    """A fresh virtual host on the RabbitMQ at 127.0.0.1:5672 (guest may use it), deleted
    afterwards: no message of another test or run can reach this one's workers."""
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    name = f"marts_test_{uuid.uuid4().hex[:10]}"

    def ctl_run(*args: str) -> None:
        subprocess.run([ctl, *args], check=True, capture_output=True, timeout=60)

    try:
        ctl_run("add_vhost", name)
    except (OSError, subprocess.SubprocessError) as exc:
        required_service("RabbitMQ (rabbitmqctl)", exc)
    ctl_run("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield name
    ctl_run("delete_vhost", name)


def code_package(root: Path, name: str, jobs: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A code location package `name` under `root` whose `jobs.py` is `jobs`, importable here
    and by the processes a test starts (PYTHONPATH): what a test edits as a user edits a mart."""
    package = root / "code" / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text(jobs)
    monkeypatch.syspath_prepend(str(root / "code"))
    monkeypatch.setenv("PYTHONPATH", str(root / "code"))
    return package


def wait_for(what: str, found, seconds: float = 60, every: float = 0.1, log: Path | None = None):
    """`found()`'s first truthy answer, asked every `every` s; fail naming `what` (and the tail
    of `log`, when given) if none comes within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := found():
            return value
        time.sleep(every)
    tail = f":\n{log.read_text()[-4000:]}" if log is not None else ""
    raise AssertionError(f"{what}: not within {seconds:.0f} s{tail}")
