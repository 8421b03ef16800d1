"""S3 that misbehaves: a proxy in front of the moto server returns 503 SlowDown and 500
InternalError, and drops connections before and after S3 applied the request. Writes either
complete after retries or fail cleanly with the table unchanged; nothing is ever doubled."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pyarrow as pa
import pytest
from dagster import AssetKey, DagsterInstance

from marts_project.execution.runs import materialize_lineage
from marts_project.resources.maintenance import MaintenancePolicy, maintain
from marts_project.resources.retry import is_transient
from marts_project.settings import Settings
from marts_project_tests.conftest import DAY, Lakehouse, s3_lakehouse_at
from marts_project_tests.expected import expected_campaign_performance, mart_rows
from marts_project_tests.s3_faults import FaultyS3Proxy

END = DAY + dt.timedelta(days=1)
FACT = AssetKey(["marketing", "mkt_campaign_performance_fact"])


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultyS3Proxy]:
    host, port = s3_endpoint.removeprefix("http://").split(":")
    server = FaultyS3Proxy((host, int(port)), seed=7).start()
    yield server
    server.stop()


@pytest.fixture
def faulty_lakehouse(tmp_path, instance, proxy: FaultyS3Proxy, s3_credentials) -> Lakehouse:
    return s3_lakehouse_at(tmp_path, instance, proxy.endpoint)


def _rows(version: int, n: int = 300) -> pa.Table:
    return pa.table({"d": [DAY] * n, "k": list(range(n)), "version": [version] * n})


def test_three_days_run_through_fifteen_percent_s3_faults_and_equal_an_independent_recompute(
    faulty_lakehouse: Lakehouse, proxy: FaultyS3Proxy, tmp_path
):
    """The marketing fact and everything it reads (8 tables, three days in one run: about 240
    S3 requests, so that each kind of fault is met several times)."""
    first = DAY - dt.timedelta(days=2)
    faulty_lakehouse.seed(first, 3)
    with proxy.failing(0.15):
        outcome = materialize_lineage(
            faulty_lakehouse.defs, faulty_lakehouse.instance, FACT, first, DAY
        )
    assert outcome.success, f"run {outcome.run_id} failed under 15% S3 faults"
    print(f"\n15% faults: {dict(proxy.injected)} injected, {proxy.forwarded} forwarded")
    assert sum(proxy.injected.values()) >= 20, proxy.injected
    assert set(proxy.injected) == {"slowdown", "internal_error", "drop_before", "drop_after"}

    days = [first + dt.timedelta(days=i) for i in range(3)]
    expected = expected_campaign_performance(faulty_lakehouse.landing, days, tmp_path / "x")
    assert mart_rows(faulty_lakehouse.mart()) == expected
    # Every table holds what the same days give on a local disk without faults: nothing lost,
    # nothing doubled by a retried write whose first attempt had landed.
    with DagsterInstance.ephemeral() as instance:
        reference = Lakehouse(Settings.local(tmp_path / "reference"), instance)
        reference.seed(first, 3)
        assert materialize_lineage(reference.defs, instance, FACT, first, DAY).success
    tables = reference.warehouse.table_identifiers()
    assert faulty_lakehouse.warehouse.table_identifiers() == tables
    for name in tables:
        got, want = faulty_lakehouse.warehouse.read(name), reference.warehouse.read(name)
        assert got.num_rows == want.num_rows, name


# 50% faults make every request wait out botocore's backoff (about a minute per write), so CI
# runs one write and the slow-marked variants (`pytest -m slow`) run many.
TRIALS = pytest.mark.parametrize(
    "trials", [1, pytest.param(20, marks=pytest.mark.slow)], ids=["ci", "many"]
)


@TRIALS
def test_at_fifty_percent_faults_each_write_lands_once_or_leaves_the_table_unchanged(
    faulty_lakehouse: Lakehouse, proxy: FaultyS3Proxy, trials: int
):
    warehouse = faulty_lakehouse.warehouse
    warehouse.overwrite_days("raw.flaky", _rows(0), "d", DAY, END)
    landed, refused = [], []
    for version in range(1, trials + 1):
        before = warehouse.load_table("raw.flaky").current_snapshot().snapshot_id
        try:
            with proxy.failing(0.5):
                warehouse.overwrite_days("raw.flaky", _rows(version), "d", DAY, END)
        except Exception as exc:  # noqa: BLE001 - a clean failure is an allowed outcome
            assert is_transient(exc), f"write {version} failed with a non-transient {exc!r}"
            refused.append(version)
            assert warehouse.load_table("raw.flaky").current_snapshot().snapshot_id == before
        else:
            landed.append(version)
        table = warehouse.read("raw.flaky")
        assert table.num_rows == 300, f"write {version} left {table.num_rows} rows"
        assert set(table.column("version").to_pylist()) == {landed[-1] if landed else 0}
    assert sum(proxy.injected.values()) >= 10 * trials, proxy.injected
    assert landed, "no write got through 50% faults: the retries are not working"
    print(f"\n50% faults: {len(landed)} of {trials} writes landed, {len(refused)} refused cleanly,")
    print(f"{dict(proxy.injected)} injected, {proxy.forwarded} requests forwarded")

    report = maintain(
        warehouse,
        "raw.flaky",
        MaintenancePolicy(retain=dt.timedelta(0), keep_last=1, orphan_min_age=dt.timedelta(0)),
    )
    table = warehouse.read("raw.flaky")
    assert table.num_rows == 300 and set(table.column("version").to_pylist()) == {landed[-1]}
    assert report.orphan_files_deleted >= 0


@pytest.mark.slow
@pytest.mark.parametrize("trials", [8])
def test_write_audit_publish_under_fifty_percent_faults_publishes_whole_or_not_at_all(
    faulty_lakehouse: Lakehouse, proxy: FaultyS3Proxy, trials: int
):
    warehouse = faulty_lakehouse.warehouse
    warehouse.write_audit_publish("marketing.flaky", _rows(0), "d", DAY, END, audit=lambda t: [])
    published, failed = 0, 0
    for version in range(1, trials + 1):
        try:
            with proxy.failing(0.5):
                warehouse.write_audit_publish(
                    "marketing.flaky", _rows(version), "d", DAY, END, audit=lambda t: []
                )
            published = version
        except Exception as exc:  # noqa: BLE001 - a clean failure is an allowed outcome
            assert is_transient(exc), f"publish {version} failed with a non-transient {exc!r}"
            failed += 1
        table = warehouse.load_table("marketing.flaky")
        rows = warehouse.read("marketing.flaky")
        assert set(rows.column("version").to_pylist()) == {published}
        assert rows.num_rows == 300
        assert [ref for ref in table.metadata.refs if ref != "main"] == [], "a branch was left"
    assert sum(proxy.injected.values()) >= 10 * trials, proxy.injected
    print(f"\n50% faults: {trials - failed} of {trials} publishes landed, {failed} refused,")
    print(f"{dict(proxy.injected)} injected, {proxy.forwarded} requests forwarded")
