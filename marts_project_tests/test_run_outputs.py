"""A run's next steps read what it just published from memory, until the run ends: the process
that runs it (the `marts` command, a run worker, a cluster worker) holds no run's tables after
it."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pyarrow as pa
import pytest

from marts_project.resources.iceberg_io import IcebergIOManager, _remember, read_in_run

pytestmark = pytest.mark.quick

DAY = dt.date(2026, 10, 5)
NEXT = DAY + dt.timedelta(days=1)
TABLE = "staging.stg_mkt_ad_stats"


class NoScans:
    """A warehouse no read may reach: a read from memory never scans."""

    def read_with_records(self, *args):
        raise AssertionError("scanned Iceberg for an output the run had just published")


class Scans:
    def read_with_records(self, *args):
        return pa.table({"from": ["iceberg"]}), {}


def published(run_id: str) -> pa.Table:
    table = pa.table({"from": ["memory"]})
    _remember(run_id, TABLE, DAY, NEXT, table, {})
    return table


def test_a_process_running_the_whole_run_drops_its_outputs_when_the_run_ends():
    published("run-b")
    manager = IcebergIOManager(warehouse=None)
    manager.teardown_after_execution(SimpleNamespace(run_id="run-b"))  # the run ended
    assert read_in_run("run-b", Scans(), TABLE, start=DAY, end=NEXT)[0]["from"][0].as_py() == (
        "iceberg"
    )


def test_another_runs_write_drops_the_outputs_a_worker_kept():
    published("run-c")
    published("run-d")  # the process's next run wrote
    assert read_in_run("run-c", Scans(), TABLE, start=DAY, end=NEXT)[0]["from"][0].as_py() == (
        "iceberg"
    )
    assert read_in_run("run-d", NoScans(), TABLE, start=DAY, end=NEXT)[0]["from"][0].as_py() == (
        "memory"
    )
