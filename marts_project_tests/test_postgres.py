"""Production settings against the PostgreSQL on 127.0.0.1:5432: the Iceberg SQL catalog and
Dagster's run/event storage on PostgreSQL, with the same asset code."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pyarrow as pa
from dagster import DagsterInstance

from marts_project.execution.runs import materialize_days
from marts_project.resources.iceberg import IcebergWarehouse
from marts_project.settings import Settings
from marts_project_tests.conftest import DAY, Lakehouse, days, pg_connect
from marts_project_tests.expected import expected_campaign_performance, mart_rows

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"


def test_pipeline_on_postgres_catalog_and_postgres_dagster_storage(database, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "storage:\n  postgres:\n    postgres_url: "
        f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}\n"
        "telemetry:\n  enabled: false\n"
    )
    local = Settings.local(tmp_path / "data")
    settings = Settings(
        data_dir=local.data_dir,
        warehouse=local.warehouse,
        catalog_uri=f"{PG}/{database}",
        landing=local.landing,
    )
    instance = DagsterInstance.from_config(str(home))
    lake = Lakehouse(settings, instance)
    lake.seed(DAY, 2)

    outcome = materialize_days(lake.defs, instance, DAY, days(DAY, 2)[-1])
    again = materialize_days(lake.defs, instance, DAY, DAY)

    assert outcome.success and again.success and not outcome.checks_failed
    expected = expected_campaign_performance(lake.landing, days(DAY, 2), tmp_path / "x")
    assert mart_rows(lake.mart()) == expected
    with pg_connect(database) as con, con.cursor() as cur:
        cur.execute("select count(*) from iceberg_tables where catalog_name = 'marts'")
        assert cur.fetchone()[0] == 27  # raw 9 + quarantine + staging 9 + int 2 + daily marts 6
        cur.execute("select count(*) from runs")
        assert cur.fetchone()[0] == 2  # Dagster's runs live in PostgreSQL too
    instance.dispose()


WRITER = """
import datetime as dt, json, sys
import pyarrow as pa
from marts_project.resources.iceberg import IcebergWarehouse
catalog_uri, warehouse, day, first, count = sys.argv[1:6]
w = IcebergWarehouse(catalog_uri=catalog_uri, warehouse=warehouse)
day = dt.date.fromisoformat(day)
for version in range(int(first), int(first) + int(count)):
    n = 400 + version
    data = pa.table({"d": [day] * n, "k": list(range(n)), "version": [version] * n})
    try:
        w.overwrite_days("raw.contended", data, "d", day, day + dt.timedelta(days=1))
        print(json.dumps({"version": version, "ok": True}), flush=True)
    except Exception as exc:
        error = type(exc).__name__
        print(json.dumps({"version": version, "ok": False, "error": error}), flush=True)
"""


def test_writer_processes_contending_on_a_postgres_catalog(database, tmp_path):
    """Four processes each rewrite their own day five times while two more race on one shared
    day, all against one table in a PostgreSQL catalog. Different days: every commit lands,
    none twice. The shared day: each write lands whole or is refused, never mixed."""
    catalog_uri = f"{PG}/{database}"
    warehouse = (tmp_path / "warehouse").as_uri()
    own_days = [DAY + dt.timedelta(days=i) for i in range(4)]
    shared = DAY + dt.timedelta(days=10)
    seeder = IcebergWarehouse(catalog_uri=catalog_uri, warehouse=warehouse)
    seeder.overwrite_days(
        "raw.contended",
        pa.table({"d": [shared], "k": [0], "version": [0]}),
        "d",
        shared,
        shared + dt.timedelta(days=1),
    )
    jobs = [(day, 1, 5) for day in own_days] + [(shared, 100, 5), (shared, 200, 5)]
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, catalog_uri, warehouse, day.isoformat(), str(a), str(n)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for day, a, n in jobs
    ]
    outcomes = [
        [json.loads(line) for line in writer.communicate(timeout=600)[0].splitlines()]
        for writer in writers
    ]

    for day, results in zip(own_days, outcomes[:4], strict=True):
        assert [r["ok"] for r in results] == [True] * 5, (day, results)
    for results in outcomes[4:]:
        assert {r.get("error") for r in results if not r["ok"]} <= {
            "CommitFailedException",
            "ValidationException",
        }, results
    table = seeder.load_table("raw.contended")
    rows = seeder.read("raw.contended")
    by_day: dict = {}
    for row in rows.select(["d", "k", "version"]).to_pylist():
        by_day.setdefault(row["d"], []).append((row["k"], row["version"]))
    for day in own_days:
        assert {v for _, v in by_day[day]} == {5}, f"{day} lost its last commit"
        assert sorted(k for k, _ in by_day[day]) == list(range(405))
    shared_versions = {v for _, v in by_day[shared]}
    assert len(shared_versions) == 1, f"the shared day mixes versions {shared_versions}"
    (winner,) = shared_versions
    assert sorted(k for k, _ in by_day[shared]) == list(range(400 + winner))
    # No write landed twice: every write id added data files in exactly one snapshot.
    added: dict[str, int] = {}
    for snap in table.snapshots():
        summary = snap.summary or {}
        if int(summary.get("added-data-files", 0) or 0):
            write_id = summary.get("marts.write_id")
            added[write_id] = added.get(write_id, 0) + 1
    assert set(added.values()) == {1}
    landed = sum(r["ok"] for results in outcomes for r in results)
    assert len(added) == landed + 1  # and the seed
    refused = sum(not r["ok"] for results in outcomes for r in results)
    print(f"\n{landed} writes landed, {refused} refused, over {len(writers)} processes")


def test_a_catalog_another_process_is_creating_is_opened_not_failed(database, tmp_path):
    """The first steps of a cluster backfill open a new catalog together, and each creates its
    tables: PostgreSQL lets one through and refuses the others (`duplicate key value violates
    unique constraint "pg_type_typname_nsp_index"`; a backfill's first chunk failed so). Here
    another process holds the catalog tables created but not committed while we open the
    catalog: we wait on it, are refused, and open the catalog it made."""
    import threading
    import time

    from pyiceberg.catalog.sql import SqlCatalogBaseTable
    from sqlalchemy import create_engine

    engine = create_engine(f"{PG}/{database}")
    other = engine.connect()
    creating = other.begin()
    SqlCatalogBaseTable.metadata.create_all(other)  # created, not committed yet
    outcome: dict[str, object] = {}

    def open_catalog() -> None:
        warehouse = IcebergWarehouse(catalog_uri=f"{PG}/{database}", warehouse=tmp_path.as_uri())
        try:
            outcome["tables"] = warehouse.table_identifiers()
        except Exception as exc:  # noqa: BLE001 - the test reports it
            outcome["error"] = exc

    opener = threading.Thread(target=open_catalog)
    opener.start()
    time.sleep(2)  # the opener is now waiting on the other transaction's tables
    creating.commit()
    other.close()
    opener.join(timeout=60)
    engine.dispose()
    assert outcome == {"tables": []}


def test_a_namespace_another_writer_creates_at_the_same_moment_is_used_not_failed(
    database, tmp_path, monkeypatch
):
    """The first chunks of a cluster backfill write new tables of one new namespace at once:
    pyiceberg checks the namespace is missing, another writer creates it, and PostgreSQL
    refuses our insert (`duplicate key ... iceberg_namespace_properties_pkey`; a chunk failed
    so in the suite). Here the other writer creates it right after our check: the write lands
    in the namespace it made."""
    from pyiceberg.catalog.sql import SqlCatalog

    warehouse = IcebergWarehouse(catalog_uri=f"{PG}/{database}", warehouse=tmp_path.as_uri())
    other = IcebergWarehouse(catalog_uri=f"{PG}/{database}", warehouse=tmp_path.as_uri())
    check = SqlCatalog.namespace_exists
    raced: list[str] = []

    def check_then_lose_the_race(catalog, namespace) -> bool:
        exists = check(catalog, namespace)
        if not exists and not raced:
            raced.append(namespace)
            other.catalog().create_namespace(namespace)  # committed just after our check
        return exists

    monkeypatch.setattr(SqlCatalog, "namespace_exists", check_then_lose_the_race)
    rows = pa.table({"day": pa.array([DAY], pa.date32()), "amount": [1.5]})
    warehouse.overwrite_days("fresh.amounts", rows, "day", DAY, DAY + dt.timedelta(days=1))
    assert raced == ["fresh"]
    assert warehouse.read("fresh.amounts").to_pylist() == rows.to_pylist()


def test_a_table_another_writer_created_without_its_day_spec_yet_gets_it_before_our_write(
    database, tmp_path
):
    """Two chunk workers write a new table at once: one creates it, then adds the day spec in a
    second commit; the other found the table in between and wrote files with no partition (a
    check then failed reading their day). Now the second writer adds the spec itself first."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import DateType, DoubleType, NestedField

    warehouse = IcebergWarehouse(catalog_uri=f"{PG}/{database}", warehouse=tmp_path.as_uri())
    warehouse.catalog().create_namespace("fresh")
    schema = Schema(
        NestedField(1, "day", DateType(), required=False),
        NestedField(2, "amount", DoubleType(), required=False),
    )
    warehouse.catalog().create_table("fresh.amounts", schema)  # the other writer, half done
    rows = pa.table({"day": pa.array([DAY], pa.date32()), "amount": [1.5]})
    warehouse.overwrite_days("fresh.amounts", rows, "day", DAY, DAY + dt.timedelta(days=1))
    assert warehouse.latest_day("fresh.amounts") == DAY
    assert warehouse.load_table("fresh.amounts").spec().fields
