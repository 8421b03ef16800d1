"""Data you can trust: every contract check passes on good data and fails on data crafted to
break it; write-audit-publish keeps a broken transform away from readers; time travel and
rollback; the CI check command."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from decimal import Decimal

import pyarrow as pa
import pytest

from marts_project.checks.audits import (
    audit_accepted_values,
    audit_recency,
    audit_row_count_floor,
    audit_schema,
    audit_unique_key,
    audit_value_ranges,
)
from marts_project.checks.registry import WRITE_AUDITS
from marts_project.cli import main
from marts_project.execution.runs import materialize_days, refresh_days
from marts_project.marts import ALL_MARTS, contract_of
from marts_project.marts.common import build_mart
from marts_project.observability.freshness import partition_freshness
from marts_project.planning.planner import stale_partitions
from marts_project.raw.sources import source_specs
from marts_project.raw.validation import SchemaDriftError, parse_landing_file
from marts_project.resources.duck import UtcDuckDB
from marts_project.resources.sql import run_sql
from marts_project.simulator import SimConfig, land
from marts_project_tests.conftest import DAY, SIM, Lakehouse, days

PERF = contract_of("mkt_campaign_performance_fact")


def perf_rows(**changes) -> pa.Table:
    """Two good rows of the campaign performance fact, with `changes` applied to the second."""
    base = {
        "stat_date": DAY,
        "campaign_id": "cmp_1",
        "campaign_name": "a",
        "channel": "search",
        "impressions": 100,
        "clicks": 5,
        "platform_conversions": 1,
        "leads": 2,
        "mqls": 1,
        "spend": Decimal("10.00"),
        "click_through_rate": 0.05,
        "cost_per_lead": 5.0,
        "cost_per_mql": 10.0,
        "_last_refreshed_at": dt.datetime(2026, 10, 6, tzinfo=dt.UTC),
    }
    rows = [base, {**base, "campaign_id": "cmp_2", **changes}]
    return PERF.conform(pa.Table.from_pylist(rows, schema=PERF.arrow_schema.with_metadata({})))


def test_unique_key_passes_on_good_rows_and_fails_on_duplicates():
    assert audit_unique_key(PERF, perf_rows()).passed
    duplicate = audit_unique_key(PERF, perf_rows(campaign_id="cmp_1"))
    assert not duplicate.passed and duplicate.metadata["duplicate_keys"] == 1


def test_unique_key_fails_on_null_keys():
    table = perf_rows().set_column(1, "campaign_id", pa.array(["cmp_1", None]))
    assert audit_unique_key(PERF, table).metadata["null_keys"] == 1


def test_row_count_floor_fails_for_an_empty_partition():
    assert audit_row_count_floor(PERF, perf_rows(), [DAY]).passed
    missing_day = audit_row_count_floor(PERF, perf_rows(), [DAY, DAY + dt.timedelta(days=1)])
    assert not missing_day.passed and "2026-10-06" in missing_day.message


def test_accepted_values_fail_on_an_unknown_channel():
    assert audit_accepted_values(PERF, perf_rows()).passed
    bad = audit_accepted_values(PERF, perf_rows(channel="carrier_pigeon"))
    assert not bad.passed and "carrier_pigeon" in bad.message


@pytest.mark.parametrize(
    "change", [{"spend": Decimal("-1.00")}, {"click_through_rate": 1.5}, {"impressions": -3}]
)
def test_value_ranges_fail_outside_the_contract(change):
    assert audit_value_ranges(PERF, perf_rows()).passed
    assert not audit_value_ranges(PERF, perf_rows(**change)).passed


def test_schema_conformance_fails_on_missing_retyped_or_nullable_columns():
    good = PERF.arrow_schema
    assert audit_schema(PERF, good).passed
    assert (
        "spend: missing" in audit_schema(PERF, good.remove(good.get_field_index("spend"))).message
    )
    retyped = good.set(good.get_field_index("clicks"), pa.field("clicks", pa.string(), False))
    assert "clicks: string, contract says bigint" in audit_schema(PERF, retyped).message
    loose = good.set(good.get_field_index("spend"), pa.field("spend", pa.decimal128(18, 2)))
    assert "spend: nullable in table" in audit_schema(PERF, loose).message
    extra = good.append(pa.field("surprise", pa.int64()))
    assert "surprise: not in contract" in audit_schema(PERF, extra).message


def test_recency_fails_when_the_newest_day_is_older_than_the_sla():
    now = dt.datetime(2026, 10, 7, 6, tzinfo=dt.UTC)
    assert audit_recency(PERF, dt.date(2026, 10, 6), now).passed
    assert not audit_recency(PERF, dt.date(2026, 10, 1), now).passed
    assert not audit_recency(PERF, None, now).passed


def test_reconciliation_sql_finds_marketing_cost_that_disagrees_with_spend():
    (rec,) = contract_of("fin_pnl_monthly_agg").reconciliations
    perf = pa.table({"stat_date": [DAY, DAY], "spend": [Decimal("10.00"), Decimal("5.00")]})
    duck = UtcDuckDB(database=":memory:")

    def mismatches(cost: str) -> int:
        pnl = pa.table({"month_start": [dt.date(2026, 10, 1)], "marketing_cost": [Decimal(cost)]})
        tables = {"fin_pnl_monthly_agg": pnl, "mkt_campaign_performance_fact": perf}
        return run_sql(duck, rec.sql, tables).num_rows

    assert mismatches("15.00") == 0
    assert mismatches("14.00") == 1


def test_order_count_reconciliations_find_days_finance_and_operations_disagree_on():
    (ops_vs_revenue,) = contract_of("ops_orders_fact").reconciliations
    (payments_vs_revenue,) = contract_of("fin_payment_reconciliation_fact").reconciliations
    ops = pa.table({"order_id": ["a", "b", "c"], "order_date": [DAY, DAY, DAY]})
    payments = pa.table({"order_date": [DAY], "orders": [3]})
    duck = UtcDuckDB(database=":memory:")

    def mismatches(sql: str, revenue_orders: list[int]) -> int:
        revenue = pa.table({"order_date": [DAY] * len(revenue_orders), "orders": revenue_orders})
        tables = {
            "ops_orders_fact": ops,
            "fin_revenue_daily_fact": revenue,
            "fin_payment_reconciliation_fact": payments,
        }
        return run_sql(duck, sql, tables).num_rows

    for sql in (ops_vs_revenue.sql, payments_vs_revenue.sql):
        assert mismatches(sql, [2, 1]) == 0
        assert mismatches(sql, [2, 2]) == 1


def test_a_retyped_required_column_blocks_the_partition():
    spec = source_specs()["mkt_ad_stats"]
    payload = (
        b"stat_date,ad_id,campaign_id,impressions,clicks,spend,currency,conversions,extracted_at\n"
        b"2026-10-05,a1,c1,10,1,12 EUR,USD,0,2026-10-06T01:00:00+00:00\n"
        b"2026-10-05,a2,c1,10,1,9 EUR,USD,0,2026-10-06T01:00:00+00:00\n"
    )
    with pytest.raises(SchemaDriftError, match=r"retyped .*spend \(none of 2 values"):
        parse_landing_file(payload, spec, DAY, "f.csv", UtcDuckDB(database=":memory:"))


def test_partition_freshness_sees_a_restated_day_until_it_is_refreshed(lakehouse):
    mart = next(m for m in ALL_MARTS if m.contract.name == "mkt_campaign_performance_fact")
    lakehouse.seed(DAY, 3)
    lakehouse.run(DAY, days(DAY, 3)[-1])
    now = dt.datetime.combine(days(DAY, 3)[-1] + dt.timedelta(days=1), dt.time(6), dt.UTC)

    def statuses() -> list[str]:
        stale = stale_partitions(
            lakehouse.defs.assets, lakehouse.warehouse, lakehouse.serving(), lakehouse.landing
        )
        rows = partition_freshness(
            mart,
            lakehouse.serving(),
            lakehouse.landing,
            now,
            3,
            stale=stale,
            built=lakehouse.warehouse.build_records(f"marketing.{mart.contract.name}"),
        )
        return [r.status for r in rows]

    assert statuses() == ["fresh"] * 3
    lakehouse.landing.write_bytes(
        "mkt_ad_stats", DAY, lakehouse.landing.read_bytes("mkt_ad_stats", DAY)
    )
    assert statuses() == ["stale", "fresh", "fresh"]
    lakehouse.run(DAY)
    assert statuses() == ["fresh"] * 3


def test_a_marts_data_checks_are_judged_once_by_its_write_and_reported_with_it(lakehouse):
    lakehouse.seed(DAY, 1)
    outcomes = refresh_days(lakehouse.defs, lakehouse.instance, DAY, DAY)  # days to views
    assert all(o.success and not o.checks_failed for o in outcomes)
    evaluations = [
        e
        for run in lakehouse.instance.get_runs()
        for e in lakehouse.instance.all_logs(run.run_id)
        if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    for mart in ALL_MARTS:
        key = mart.asset.key
        written = [
            e
            for e in evaluations
            if e.dagster_event.asset_check_evaluation_data.asset_key == key
            and e.dagster_event.asset_check_evaluation_data.check_name in WRITE_AUDITS
        ]
        listed = [name for name, _ in mart.contract.checks if name in WRITE_AUDITS]
        names = [e.dagster_event.asset_check_evaluation_data.check_name for e in written]
        assert sorted(names) == sorted(listed), mart.contract.name  # each once, none missing
        step = key.to_python_identifier()  # no step of its own: the mart's write reports it
        assert {e.step_key for e in written} == {step}, mart.contract.name
        assert all(e.dagster_event.asset_check_evaluation_data.passed for e in written)


def test_a_broken_transform_fails_its_audit_and_readers_keep_the_last_good_data(
    lakehouse, tmp_path, monkeypatch, capsys
):
    lakehouse.seed(DAY, 2)
    lakehouse.run(DAY, days(DAY, 2)[-1])
    identifier = "marketing.mkt_campaign_performance_fact"
    published = lakehouse.warehouse.read(identifier)
    served = lakehouse.serving().read(identifier)
    snapshot = lakehouse.warehouse.load_table(identifier).current_snapshot().snapshot_id

    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    source = next(m for m in ALL_MARTS if m.contract.name == "mkt_campaign_performance_fact")
    shutil.copy(source.sql_file.with_suffix(".yml"), broken_dir)
    sql = source.sql_file.read_text().replace(
        "select * from final", "select * from final union all select * from final limit 1000000"
    )
    (broken_dir / source.sql_file.name).write_text(sql)  # every row twice: keys break
    broken = Lakehouse.__new__(Lakehouse)
    broken.__dict__.update(lakehouse.__dict__)
    from marts_project.definitions import build_definitions

    broken.defs = build_definitions(
        lakehouse.settings, marts=[build_mart(broken_dir, "mkt_campaign_performance_fact")]
    )
    outcome = materialize_days(broken.defs, lakehouse.instance, DAY, DAY)

    assert not outcome.success
    failure = [
        e.dagster_event.step_failure_data.error
        for e in lakehouse.instance.all_logs(outcome.run_id)
        if e.dagster_event and e.dagster_event.event_type_value == "STEP_FAILURE"
    ][0]
    message = (failure.cause or failure).message
    assert f"audit failed, main stays at snapshot {snapshot}" in message
    assert "unique_key" in message
    table = lakehouse.warehouse.load_table(identifier)
    assert table.current_snapshot().snapshot_id == snapshot
    assert list(table.metadata.refs) == ["main"]  # the audit branch is gone
    assert (
        lakehouse.warehouse.read(identifier)
        .sort_by("campaign_id")
        .equals(published.sort_by("campaign_id"))
    )
    assert lakehouse.serving().read(identifier).num_rows == served.num_rows

    # The refused write's snapshot stays in the table's history, but it never was on main: an
    # operator cannot roll the mart back onto it.
    monkeypatch.setenv("MARTS_DATA_DIR", str(lakehouse.settings.data_dir))
    table = lakehouse.warehouse.load_table(identifier)
    refused = {s.snapshot_id for s in table.snapshots()} - {
        e.snapshot_id for e in table.metadata.snapshot_log
    }
    assert refused, "the refused write left no snapshot to try"
    for snapshot_id in refused:
        assert main(["rollback", "mkt_campaign_performance_fact", "--to", str(snapshot_id)]) == 2
        assert "was never published on main" in capsys.readouterr().err
    assert lakehouse.warehouse.load_table(identifier).current_snapshot().snapshot_id == snapshot
    assert lakehouse.serving().read(identifier).num_rows == served.num_rows


def test_time_travel_and_rollback_restore_an_earlier_snapshot(lakehouse, monkeypatch, capsys):
    monkeypatch.setenv("MARTS_DATA_DIR", str(lakehouse.settings.data_dir))
    identifier = "finance.fin_revenue_daily_fact"
    lakehouse.seed(DAY, 1)
    lakehouse.run(DAY)
    first = lakehouse.warehouse.load_table(identifier).current_snapshot().snapshot_id
    before = lakehouse.warehouse.read(identifier)
    land(
        lakehouse.landing,
        [DAY],
        dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
        SimConfig(seed=99, rows_per_day=SIM.rows_per_day),  # every source re-exports the day
    )
    lakehouse.run(DAY)
    changed = lakehouse.warehouse.read(identifier).sort_by("sales_channel")
    assert (
        changed["gross_revenue"].to_pylist()
        != before.sort_by("sales_channel")["gross_revenue"].to_pylist()
    )

    assert main(["show", "fin_revenue_daily_fact", "--as-of", str(first)]) == 0
    assert str(before.column("gross_revenue")[0]) in capsys.readouterr().out
    assert main(["rollback", "fin_revenue_daily_fact", "--to", str(first)]) == 0

    assert (
        lakehouse.warehouse.read(identifier)
        .sort_by("sales_channel")
        .equals(before.sort_by("sales_channel"))
    )
    assert lakehouse.serving().read(identifier).num_rows == before.num_rows
    assert main(["snapshots", "fin_revenue_daily_fact"]) == 0
    history = capsys.readouterr().out
    assert f"* {first:>20}" in history
    # days as runs print them (both ends included); the delete that opens an overwrite is a
    # step of its write, not a failure, and shows only when asked for
    writes = [line for line in history.splitlines() if re.match(r"[ *x-] +\d{6,} ", line)]
    assert writes and all(f"  {DAY}  " in line and ".." not in line for line in writes)
    assert not any(line.startswith(("x", "-")) for line in writes), history
    assert main(["snapshots", "fin_revenue_daily_fact", "--steps"]) == 0
    steps = capsys.readouterr().out.splitlines()
    assert any(line.startswith("-") and " delete " in line for line in steps)


def test_ci_check_command_runs_every_check_and_prints_a_table(capsys, tmp_path):
    assert main(["check", "--days", "2", "--rows-per-day", "40", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "marketing/mkt_campaign_performance_fact  unique_key" in out
    assert "order_counts_match_finance" in out and "marketing_cost_matches_campaign_spend" in out
    assert "0 failed (ERROR)" in out


def test_sql_on_the_serving_database_and_clear_errors(lakehouse, monkeypatch, capsys):
    monkeypatch.setenv("MARTS_DATA_DIR", str(lakehouse.settings.data_dir))
    assert main(["sql", "select 1"]) == 2  # nothing served yet
    assert "no serving database" in capsys.readouterr().err
    lakehouse.seed(DAY, 1)
    lakehouse.run(DAY)
    query = "select count(*) as n from operations.ops_orders_fact"
    assert main(["sql", query]) == 0
    n = lakehouse.warehouse.read("operations.ops_orders_fact").num_rows
    assert capsys.readouterr().out.splitlines() == ["n", str(n)]
    assert main(["sql", "select * from no_such_mart"]) == 2
    assert "query failed" in capsys.readouterr().err
    catalog = lakehouse.settings.data_dir / "catalog.db"
    intact = catalog.read_bytes()
    for query in (
        f"copy (select 1) to '{catalog}'",
        f"export database '{lakehouse.settings.data_dir / 'dump'}'",
        "set enable_external_access = true",
        "install httpfs",
        "select * from read_csv('/etc/passwd')",
        "create table operations.mine as select 1",
    ):
        assert main(["sql", query]) == 2, query
        # refused by type before it runs, or (a query reading a file) by DuckDB's settings
        assert re.search(r"query (refused|failed)", capsys.readouterr().err), query
    assert catalog.read_bytes() == intact  # the Iceberg catalog is untouched
    assert not (lakehouse.settings.data_dir / "dump").exists()
    assert main(["snapshots", "not_a_mart"]) == 2
    assert "unknown mart 'not_a_mart'" in capsys.readouterr().err


def test_a_backfill_prints_each_step_as_it_finishes(lakehouse, monkeypatch, capsys):
    monkeypatch.setenv("MARTS_DATA_DIR", str(lakehouse.settings.data_dir))
    lakehouse.seed(DAY, 1)
    assert main(["backfill", "--start", str(DAY)]) == 0
    lines = capsys.readouterr().out.splitlines()
    steps = [line.split() for line in lines if re.match(r"\s+\d+/\d+\s", line)]
    daily = [s for s in steps if s[0].endswith("/32")]  # every step of the daily job, in order
    assert [s[0] for s in daily] == [f"{i}/32" for i in range(1, 33)]
    assert all(s[1] == "OK" for s in steps)
    built = {s[2]: s for s in daily if "rows" in s}
    fact = lakehouse.warehouse.read("marketing.mkt_campaign_performance_fact").num_rows
    assert built["marketing.mkt_campaign_performance_fact"][3] == f"{fact:,}"
    checks = [" ".join(s[2:]) for s in daily if "checks" in s]  # a mart's checks: one step
    assert any(c.startswith("marketing.mkt_campaign_performance_fact checks ") for c in checks)
    # each run still ends with its summary line, after its steps
    assert any(line.lstrip().startswith("daily_assets_job") for line in lines)
