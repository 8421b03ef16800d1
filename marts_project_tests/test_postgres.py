"""Production settings against the PostgreSQL on 127.0.0.1:5432: the Iceberg SQL catalog and
Dagster's run/event storage on PostgreSQL, with the same asset code."""

from __future__ import annotations

import os
import uuid

import pytest
from dagster import DagsterInstance

from marts_project.runs import materialize_days
from marts_project.settings import Settings
from marts_project_tests.conftest import DAY, Lakehouse, days
from marts_project_tests.expected import expected_campaign_performance, mart_rows

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"


def _connect(database: str = "postgres"):
    psycopg2 = pytest.importorskip("psycopg2")
    return psycopg2.connect(
        host="127.0.0.1", port=5432, user="postgres", dbname=database, connect_timeout=3
    )


@pytest.fixture
def database():
    """A fresh PostgreSQL database, dropped afterwards."""
    try:
        admin = _connect()
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server here"
        if os.environ.get("MARTS_REQUIRE_POSTGRES"):
            raise
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 ({exc}); CI sets MARTS_REQUIRE_POSTGRES")
    admin.autocommit = True
    name = f"marts_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f"create database {name}")
    yield name
    with admin.cursor() as cur:
        cur.execute(f"drop database if exists {name} with (force)")
    admin.close()


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
    with _connect(database) as con, con.cursor() as cur:
        cur.execute("select count(*) from iceberg_tables where catalog_name = 'marts'")
        assert cur.fetchone()[0] == 27  # raw 9 + quarantine + staging 9 + int 2 + daily marts 6
        cur.execute("select count(*) from runs")
        assert cur.fetchone()[0] == 2  # Dagster's runs live in PostgreSQL too
    instance.dispose()
