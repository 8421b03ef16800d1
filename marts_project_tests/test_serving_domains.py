"""Serving per domain: each domain's analysts open a database with their domain's marts and what
other domains grant them; a regulated mart has a database of its own whose every query is on
record; and the files themselves keep other domains out."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pytest
from dagster import DagsterInstance

from marts_project.cli import main
from marts_project.core.contracts import Contract
from marts_project.deployment import open_resource
from marts_project.governance.access import serving_plan, ungranted_reads
from marts_project.marts import ALL_MARTS, reads_of
from marts_project.resources.serving import ServingDatabase
from marts_project.settings import Settings
from marts_project_tests.conftest import DAY, Lakehouse

CONTRACTS = [m.contract for m in ALL_MARTS]
REGULATED = "finance.fin_payment_reconciliation_fact"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Lakehouse:
    """A day built through a real run: every serving database written by the pipeline."""
    with DagsterInstance.ephemeral() as instance:
        lake = Lakehouse(Settings.local(tmp_path_factory.mktemp("served") / "data"), instance)
        lake.seed(DAY, 1)
        lake.run(DAY)
        yield lake


def served_in(serving: ServingDatabase, database: str) -> set[str]:
    """`domain.mart` of every table and view a serving database holds."""
    if not serving.path(database).exists():
        return set()
    with serving.connect(database, read_only=True) as con:
        rows = con.execute("select table_schema, table_name from information_schema.tables")
        return {f"{schema}.{table}" for schema, table in rows.fetchall()}


def test_each_database_holds_its_domains_marts_and_only_what_is_granted_to_it(served):
    serving = served.serving()
    plan = serving_plan(CONTRACTS)
    holding: dict[str, set[str]] = {}  # identifier -> the databases that hold it
    for database in serving.databases():
        for identifier in served_in(serving, database):
            holding.setdefault(identifier, set()).add(database)

    daily = {f"{c.domain}.{c.name}" for c in CONTRACTS if c.partitioning == "daily"}
    assert daily <= set(holding)
    for identifier, databases in holding.items():
        assert databases == set(plan[identifier]), identifier
    assert plan["marketing.mkt_campaign_performance_fact"] == ("marketing", "finance")
    assert plan["finance.fin_revenue_daily_fact"] == ("finance", "operations")
    assert holding[REGULATED] == {"finance__fin_payment_reconciliation_fact"}
    assert served_in(serving, "finance__fin_payment_reconciliation_fact") == {REGULATED}

    granted = "finance.fin_revenue_daily_fact"  # served to operations too: the same rows
    for database in ("finance", "operations"):
        with serving.connect(database, read_only=True) as con:
            copy = con.sql(f"select * exclude (_last_refreshed_at) from {granted}").to_arrow_table()
        iceberg = served.warehouse.read(granted).drop_columns(["_last_refreshed_at"])
        key = [("order_date", "ascending"), ("sales_channel", "ascending")]
        assert copy.sort_by(key).to_pylist() == iceberg.sort_by(key).to_pylist(), database

    with serving.operator_view() as con:
        listed = {
            f"{s}.{t}"
            for s, t in con.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_catalog = 'operator'"
            ).fetchall()
        }
    assert listed == set(holding) - {REGULATED}


def test_marts_sql_opens_one_domain_and_every_read_of_a_regulated_mart_is_on_record(
    served, monkeypatch, capsys
):
    monkeypatch.setenv("MARTS_DATA_DIR", str(served.settings.data_dir))
    monkeypatch.setenv("MARTS_USER", "ana@finance")
    revenue_rows = served.warehouse.read("finance.fin_revenue_daily_fact").num_rows

    assert (
        main(
            [
                "sql",
                "--domain",
                "operations",
                "select count(*) as n from finance.fin_revenue_daily_fact",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines() == ["n", str(revenue_rows)]
    for domain, other in (("operations", REGULATED), ("marketing", "finance.fin_pnl_monthly_agg")):
        assert main(["sql", "--domain", domain, f"select * from {other}"]) == 2
        assert "does not exist" in capsys.readouterr().err

    regulated_rows = served.warehouse.read(REGULATED).num_rows
    query = f"select count(*) as n from {REGULATED}"
    assert main(["sql", "--mart", "fin_payment_reconciliation_fact", query]) == 0
    assert capsys.readouterr().out.splitlines() == ["n", str(regulated_rows)]
    assert main(["sql", "--mart", "fin_payment_reconciliation_fact", "select nope"]) == 2
    assert main(["sql", "--mart", "fin_revenue_daily_fact", "select 1"]) == 2
    assert "not regulated" in capsys.readouterr().err

    assert main(["show", "fin_payment_reconciliation_fact", "--limit", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1 + min(2, regulated_rows)
    assert main(["show", "fin_revenue_daily_fact", "--limit", "2"]) == 0  # not regulated

    entries = open_resource(served.settings, "audit").actions()
    (shown,) = [e for e in entries if e.action == "show"]
    assert (shown.who, shown.target, shown.result) == ("ana@finance", REGULATED, "ok: 1 row")
    trail = [e for e in entries if e.action == "sql"]
    assert [(e.who, e.target, e.params["query"]) for e in trail] == [
        ("ana@finance", "finance__fin_payment_reconciliation_fact", query),
        ("ana@finance", "finance__fin_payment_reconciliation_fact", "select nope"),
    ]
    assert trail[0].result == "ok: 1 row"
    assert trail[1].result.startswith("failed:")


def _without(contract: Contract, **changes) -> Contract:
    return contract.model_copy(update=changes)


def test_a_read_across_domains_needs_a_grant_and_a_regulated_mart_takes_none():
    reads = {m.contract.name: reads_of(m) for m in ALL_MARTS}
    assert ungranted_reads(CONTRACTS, reads) == []

    ungranted = [
        _without(c, serve_to=()) if c.name == "mkt_campaign_performance_fact" else c
        for c in CONTRACTS
    ]
    (problem,) = ungranted_reads(ungranted, reads)
    assert "finance.fin_pnl_monthly_agg reads marketing.mkt_campaign_performance_fact" in problem
    assert "serve_to" in problem

    leaky = {
        **reads,
        "ops_orders_fact": reads["ops_orders_fact"] | {"fin_payment_reconciliation_fact"},
    }
    (problem,) = ungranted_reads(CONTRACTS, leaky)
    assert "regulated" in problem

    body = next(c for c in CONTRACTS if c.name == "fin_payment_reconciliation_fact").model_dump()
    for change, message in (
        ({"serve_to": ["operations"]}, "regulated mart is served only from its own database"),
        ({"regulated": False, "serve_to": ["finance"]}, "own domain"),
    ):
        with pytest.raises(ValueError, match=message):
            Contract.model_validate({**body, **change})


def test_database_folders_are_readable_only_by_their_domains_group():
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user (setpriv)")
    root = Path(tempfile.mkdtemp(prefix="marts-serving-"))  # not under pytest's 0700 folder
    root.chmod(0o755)
    try:
        _check_group_access(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _check_group_access(root: Path) -> None:
    serving = ServingDatabase(root=str(root), groups={"finance": "nogroup"})
    rows = pa.table({"x": [1, 2]})
    for identifier in ("finance.t", "operations.t"):
        serving.publish(identifier, rows, lambda: rows)
    assert oct(serving.path("finance").parent.stat().st_mode & 0o777) == "0o750"
    assert oct(serving.path("operations").parent.stat().st_mode & 0o777) == "0o700"

    def read_as_nobody(database: str) -> subprocess.CompletedProcess:
        script = (
            "import duckdb, sys; "
            "print(duckdb.connect(sys.argv[1], read_only=True).sql(sys.argv[2]).fetchall())"
        )
        return subprocess.run(
            [
                "setpriv",
                "--reuid=nobody",
                "--regid=nogroup",
                "--init-groups",
                sys.executable,
                "-c",
                script,
                str(serving.path(database)),
                f"select count(*) from {database}.t",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert read_as_nobody("finance").stdout.strip() == "[(2,)]"  # a member of finance's group
    refused = read_as_nobody("operations")
    assert refused.returncode != 0 and "Permission denied" in refused.stderr


WRITES = (
    "copy (select 'x') to '{db}' (format csv, use_tmp_file false)",
    "explain analyze copy (select 'x') to '{db}' (format csv)",
    "select 1; copy (select 'x') to '{db}' (format csv)",
    "export database '{folder}/dump'",
    "attach '{folder}/other.duckdb' as other",
    "checkpoint",
    "pragma version",
    "set threads = 1",
)


@pytest.mark.parametrize(
    "mode, database",
    [
        ([], "marketing"),
        (["--domain", "marketing"], "marketing"),
        (["--mart", "fin_payment_reconciliation_fact"], "finance__fin_payment_reconciliation_fact"),
    ],
)
def test_no_statement_of_marts_sql_can_write_a_file_in_any_mode(
    served, monkeypatch, capsys, mode, database
):
    monkeypatch.setenv("MARTS_DATA_DIR", str(served.settings.data_dir))
    path = served.serving().path(database)
    intact = path.read_bytes()
    for statement in WRITES:
        text = statement.format(db=path, folder=path.parent)
        assert main(["sql", *mode, text]) == 2, text
        error = capsys.readouterr().err
        assert error.startswith("marts: error: query refused: only queries run here"), error
        assert len(error.splitlines()) == 1
    assert path.read_bytes() == intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["serving.duckdb"]
    assert main(["sql", *mode, "explain select 1"]) == 0  # a plan is read-only


def test_a_query_past_its_time_limit_is_stopped(served, monkeypatch, capsys):
    monkeypatch.setenv("MARTS_DATA_DIR", str(served.settings.data_dir))
    monkeypatch.setenv("MARTS_SQL_TIMEOUT_SECONDS", "0.5")
    endless = "select sum(a.range * b.range) from range(1000000) a, range(1000000) b"
    assert main(["sql", "--domain", "finance", endless]) == 2
    assert "time limit of 0.5 s" in capsys.readouterr().err


def test_ctrl_c_stops_a_query_at_once_with_one_line_and_exit_130(served):
    endless = "select sum(a.range * b.range) from range(1000000) a, range(1000000) b"
    env = {**os.environ, "MARTS_DATA_DIR": str(served.settings.data_dir)}
    command = [sys.executable, "-m", "marts_project", "sql", "--domain", "finance", endless]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(4)  # the query is running
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=10)
    assert (process.returncode, err) == (130, "marts: interrupted\n")
