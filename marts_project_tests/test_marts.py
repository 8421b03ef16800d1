"""Every mart of the three domains, over ten days with late data applied, equals an independent
DuckDB computation over the landing files; contracts, PII, lineage and serving hold."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from dagster import AssetKey, DagsterInstance

from marts_project.checks.audits import schema_differences
from marts_project.execution.runs import refresh_days
from marts_project.marts import ALL_MARTS
from marts_project.resources.iceberg_io import table_identifier
from marts_project.settings import Settings
from marts_project.simulator import SimConfig, land
from marts_project.simulator.marketing import FIRST, LAST
from marts_project_tests.conftest import Lakehouse, days
from marts_project_tests.expected import (
    EXPECTED,
    channel_versions,
    differences,
    landing_connection,
)

# Ten days across a week end, a month and quarter end (channel owners change) and the day the
# Madrid hub's SLA changed.
FIRST_DAY = dt.date(2026, 6, 26)
DAYS = days(FIRST_DAY, 10)
LATE_SIM = SimConfig(seed=5, rows_per_day=40)


def _close(day: dt.date, hours: int) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC) + dt.timedelta(
        hours=hours
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Ten days landed one hour after the last closed, materialized; then three days of late
    data (restated conversions, refunds, shipments, payments) landed and refreshed."""
    root = tmp_path_factory.mktemp("marts")
    with DagsterInstance.ephemeral() as instance:
        lake = Lakehouse(Settings.local(root / "data"), instance)
        land(lake.landing, DAYS, _close(DAYS[-1], 1), LATE_SIM)
        first = refresh_days(lake.defs, instance, DAYS[0], DAYS[-1], chunk_days=4)
        late = ["mkt_ad_stats", "psp_payments", "psp_refunds", "wms_shipments"]
        land(lake.landing, DAYS, _close(DAYS[-1], 72), LATE_SIM, sources=late)
        second = refresh_days(lake.defs, instance, DAYS[0], DAYS[-1])
        assert all(o.success and not o.checks_failed for o in first + second), first + second
        con = landing_connection(lake.landing, DAYS, root / "expected")
        yield lake, con, first


@pytest.mark.parametrize("identifier", sorted(EXPECTED))
def test_mart_equals_independent_computation_over_landing_files(built, identifier):
    lake, con, *_ = built
    actual = (
        lake.warehouse.read(identifier)
        if not identifier.endswith("_v")
        else (lake.serving().read(identifier))
    )
    columns, expected_sql = EXPECTED[identifier]
    assert actual.num_rows > 0
    assert differences(con, actual, columns, expected_sql) == []


def test_a_long_range_runs_in_chunks_of_days_each_day_built_once(built):
    """Ten days with chunks of 4: three daily runs (memory bounded by a chunk, not the range),
    then the weeks (up to 4 a run), each month on its own and the dimensions; every day of
    every daily table materialized exactly once. The marts equal the independent computation."""
    lake, _, first = built
    assert [(o.job_name, o.partitions) for o in first] == [
        ("daily_assets_job", "2026-06-26..2026-06-29"),
        ("daily_assets_job", "2026-06-30..2026-07-03"),
        ("daily_assets_job", "2026-07-04..2026-07-05"),
        ("weekly_marts_job", "2026-06-22..2026-06-29"),
        ("monthly_marts_job", "2026-06-01..2026-06-01"),
        ("monthly_marts_job", "2026-07-01..2026-07-01"),
        ("dimensions_job", ""),
    ]
    key = AssetKey(["marketing", "mkt_campaign_performance_fact"])
    counts: dict[str, int] = {}
    for run_id in [o.run_id for o in first if o.job_name == "daily_assets_job"]:
        for record in lake.instance.fetch_materializations(key, limit=1000).records:
            if record.run_id == run_id:
                counts[record.partition_key] = counts.get(record.partition_key, 0) + 1
    assert counts == {d.isoformat(): 1 for d in DAYS}


def test_channel_dimension_keeps_the_history_of_attribute_changes(built):
    lake, con, *_ = built
    dim = lake.warehouse.read("marketing.mkt_channel_dim")
    actual = sorted(
        (r["channel"], r["valid_from"], r["platform"], r["channel_owner"], r["cost_model"])
        for r in dim.to_pylist()
    )
    assert actual == channel_versions(con)
    assert len(actual) > len({r[0] for r in actual})  # some channel changed within the ten days
    for channel in {r["channel"] for r in dim.to_pylist()}:
        rows = sorted(
            (r for r in dim.to_pylist() if r["channel"] == channel), key=lambda r: r["valid_from"]
        )
        assert [r["is_current"] for r in rows] == [False] * (len(rows) - 1) + [True]
        assert all(a["valid_to"] == b["valid_from"] for a, b in zip(rows, rows[1:], strict=False))


def test_late_data_changed_the_marts(built):
    lake, *_ = built
    sla = lake.warehouse.read("operations.ops_fulfillment_sla_fact").to_pylist()
    last_day = [r for r in sla if r["order_date"] == DAYS[-1]]
    assert sum(r["shipped_orders"] for r in last_day) > 0  # shipments landed after the day


def test_every_contract_matches_its_iceberg_table_and_covers_every_column(built):
    lake, *_ = built
    for mart in ALL_MARTS:
        identifier = table_identifier(mart.asset.key)
        if mart.contract.kind == "view":
            schema = lake.serving().read(identifier).schema
            assert schema_differences(mart.contract, schema, nullability=False) == []
            continue
        schema = lake.warehouse.load_table(identifier).schema().as_arrow()
        assert schema_differences(mart.contract, schema) == [], identifier
        assert set(schema.names) == set(mart.contract.column_names), identifier


def test_no_pii_reaches_any_mart_or_the_serving_database(built):
    lake, *_ = built
    names = {n.lower() for n in FIRST + LAST}
    for mart in ALL_MARTS:
        identifier = table_identifier(mart.asset.key)
        assert not any(c.pii for c in mart.contract.columns), identifier
        table = lake.serving().read(identifier)
        for column in table.column_names:
            if not pa.types.is_string(table.schema.field(column).type):
                continue
            values = [v for v in table.column(column).to_pylist() if v]
            assert not any("@" in v for v in values), f"{identifier}.{column} holds e-mails"
            assert not any(part in names for v in values for part in v.lower().split()), (
                f"{identifier}.{column} holds names"
            )
    leads = lake.warehouse.read("staging.stg_mkt_leads")
    assert "email" not in leads.column_names and "full_name" not in leads.column_names
    assert all(len(t) == 64 for t in leads.column("email_token").to_pylist())


def test_serving_database_holds_exactly_the_published_marts(built):
    lake, con, *_ = built
    for mart in ALL_MARTS:
        if mart.contract.kind == "view":
            continue
        identifier = table_identifier(mart.asset.key)
        con.register("served", lake.serving().read(identifier))
        con.register("published", lake.warehouse.read(identifier))
        assert con.execute(
            "select count(*) from ((from served except all from published) union all "
            "(from published except all from served))"
        ).fetchall() == [(0,)], identifier
        assert con.execute("select count(*) from served").fetchall()[0][0] > 0


def test_marts_carry_contract_metadata_and_column_lineage(built):
    lake, *_ = built
    graph = lake.defs.resolve_asset_graph()
    for mart in ALL_MARTS:
        node = graph.get(mart.asset.key)
        assert node.group_name == mart.contract.domain
        assert node.owners == [mart.contract.owner]
        assert node.description == mart.contract.description
        schema = node.metadata["dagster/column_schema"]
        assert [c.name for c in schema.columns] == mart.contract.column_names
    event = lake.instance.get_latest_materialization_event(
        AssetKey(["marketing", "mkt_campaign_performance_fact"])
    )
    lineage = event.asset_materialization.metadata["dagster/column_lineage"].value
    spend = lineage.deps_by_column["spend"]
    assert [(d.asset_key.to_user_string(), d.column_name) for d in spend] == [
        ("intermediate/int_mkt_campaign_daily", "spend")
    ]
    ctr = {d.column_name for d in lineage.deps_by_column["click_through_rate"]}
    assert ctr == {"clicks", "impressions"}


def test_a_change_on_one_day_refreshes_exactly_that_day_its_week_and_its_month(lakehouse):
    changed = dt.date(2026, 7, 2)  # week of 2026-06-29, month of July
    land(lakehouse.landing, DAYS, _close(DAYS[-1], 1), LATE_SIM)
    refresh_days(lakehouse.defs, lakehouse.instance, DAYS[0], DAYS[-1])
    before = {
        m.contract.name: _refresh_stamps(lakehouse, m) for m in ALL_MARTS if m.asset.partitions_def
    }

    land(lakehouse.landing, [changed], _close(DAYS[-1], 96), LATE_SIM, sources=["wms_shipments"])
    outcomes = refresh_days(lakehouse.defs, lakehouse.instance, changed, changed)

    assert [o.success for o in outcomes] == [True] * 4
    runs = {
        r.job_name: r.tags
        for r in lakehouse.instance.get_runs()
        if r.run_id in {o.run_id for o in outcomes}
    }
    assert runs["daily_assets_job"]["dagster/asset_partition_range_start"] == "2026-07-02"
    assert runs["daily_assets_job"]["dagster/asset_partition_range_end"] == "2026-07-02"
    assert runs["weekly_marts_job"]["dagster/asset_partition_range_start"] == "2026-06-29"
    assert runs["weekly_marts_job"]["dagster/asset_partition_range_end"] == "2026-06-29"
    assert runs["monthly_marts_job"]["dagster/asset_partition_range_end"] == "2026-07-01"
    assert runs["monthly_marts_job"]["dagster/asset_partition_range_start"] == "2026-07-01"
    expected_period = {
        "daily": changed,
        "weekly": dt.date(2026, 6, 29),
        "monthly": dt.date(2026, 7, 1),
    }
    for mart in ALL_MARTS:
        if not mart.asset.partitions_def:
            continue
        after = _refresh_stamps(lakehouse, mart)
        rewritten = {
            period
            for period, stamp in after.items()
            if stamp != before[mart.contract.name].get(period)
        }
        assert rewritten == {expected_period[mart.contract.partitioning]}, mart.contract.name


def _refresh_stamps(lake, mart) -> dict[dt.date, dt.datetime]:
    """Per partition period, the refresh time of its rows (one commit writes one stamp)."""
    table = lake.warehouse.read(table_identifier(mart.asset.key))
    stamps: dict[dt.date, set] = {}
    for row in table.select([mart.contract.partition_column, "_last_refreshed_at"]).to_pylist():
        stamps.setdefault(row[mart.contract.partition_column], set()).add(row["_last_refreshed_at"])
    assert all(len(s) == 1 for s in stamps.values())
    return {period: s.pop() for period, s in stamps.items()}


@pytest.mark.parametrize(
    "identifier",
    [
        "raw.raw_mkt_ad_stats",
        "staging.stg_shop_orders",
        "marketing.mkt_campaign_performance_fact",
        "marketing.mkt_attribution_funnel_agg",  # weekly: a range run over two weeks
    ],
)
def test_each_partition_built_by_a_range_run_reports_its_own_rows(built, identifier):
    """A backfill chunk builds several partitions in one step; each partition's
    materialization (what the UI plots and `marts report` lists) and build record (what plans
    estimate from) count that partition's rows, which add up to the table's."""
    lake, *_ = built
    key = AssetKey(identifier.split("."))
    assets_def = lake.defs.resolve_assets_def(key)
    column, partitions_def = (
        assets_def.metadata_by_key[key]["partition_expr"],
        assets_def.partitions_def,
    )
    days_of = lake.warehouse.read(identifier).column(column).cast(pa.date32()).to_pylist()
    latest: dict[str, int] = {}
    for record in lake.instance.fetch_materializations(key, limit=1000).records:  # newest first
        rows = record.asset_materialization.metadata["dagster/row_count"].value
        latest.setdefault(record.partition_key, rows)
    assert len(latest) > 1
    for partition, rows in latest.items():
        window = partitions_def.time_window_for_partition_key(partition)
        inside = sum(window.start.date() <= d < window.end.date() for d in days_of)
        assert rows == inside, partition
        assert lake.warehouse.build_records(identifier)[partition].rows == inside, partition
    assert sum(latest.values()) == len(days_of)
