"""The lake knows what every partition was built from: nothing is built twice whatever built it
(even on a fresh Dagster instance), a code change rebuilds exactly what it affects (a comment
or a reformat nothing), a landing file rewritten while it is read stays out of date, and
`marts plan` lists exactly what `marts sync` then builds."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import pytest
from dagster import AssetKey, AssetSelection

from marts_project.automation.loop import LoopState, converge
from marts_project.core.partitions import daily_partitions
from marts_project.core.versions import BuildRecord
from marts_project.definitions import build_definitions
from marts_project.execution.runs import instance_for, refresh_days
from marts_project.marts import ALL_MARTS
from marts_project.marts.common import build_mart
from marts_project.observability.freshness import partition_freshness
from marts_project.observability.slo_history import read_history
from marts_project.planning.planner import plan_for, stale_partitions
from marts_project.simulator import restate
from marts_project.transform import sql_layer
from marts_project_tests.conftest import DAY, SIM, Lakehouse, days

MART = "mkt_campaign_performance_fact"
MARKETING = Path(__file__).parents[1] / "marts_project" / "marts" / "marketing"
INT = "int_mkt_campaign_daily"
INTERMEDIATE = Path(__file__).parents[1] / "marts_project" / "intermediate"


def _built(folder: Path) -> Lakehouse:
    """Three days landed and built by a backfill, on a persistent instance."""
    from marts_project.settings import Settings

    instance = instance_for(folder / "home")
    lake = Lakehouse(Settings.local(folder / "data"), instance)
    lake.seed(DAY, 3)
    assert all(o.success for o in refresh_days(lake.defs, instance, DAY, days(DAY, 3)[-1]))
    return lake


@pytest.fixture
def lake(tmp_path):
    """A lake of its own, for a test that changes it."""
    lake = _built(tmp_path)
    yield lake
    lake.instance.dispose()


@pytest.fixture(scope="module")
def shared_lake(tmp_path_factory):
    """One lake shared by the tests that only read it (each asserts nothing was built)."""
    lake = _built(tmp_path_factory.mktemp("shared"))
    yield lake
    lake.instance.dispose()


def planned(lake: Lakehouse, defs=None) -> set[tuple[str, str | None]]:
    defs = defs or lake.defs
    plan = plan_for(defs.assets, lake.warehouse, lake.serving(), lake.landing)
    return {(s.asset.to_user_string(), s.partition) for s in plan.stale}


def built(state: LoopState) -> set[tuple[str, str | None]]:
    return {pair for outcome in state.outcomes for pair in outcome.materialized}


def with_mart_sql(lake: Lakehouse, folder: Path, sql: str, on_change: str | None = None):
    """The deployment with the mart's SQL replaced (its contract as it is, or with another
    `on_change`)."""
    folder.mkdir(exist_ok=True)
    contract = (MARKETING / f"{MART}.yml").read_text()
    if on_change:
        contract += f"on_change: {on_change}\n"
    (folder / f"{MART}.yml").write_text(contract)
    (folder / f"{MART}.sql").write_text(sql)
    return build_definitions(lake.settings, marts=[build_mart(folder, MART)])


def _edited() -> str:
    sql = (MARKETING / f"{MART}.sql").read_text()
    edited = sql.replace("round(spend / nullif(leads, 0), 4)", "round(spend / nullif(leads, 0), 3)")
    assert edited != sql
    return edited


def test_a_backfill_then_sync_launches_no_run(shared_lake):
    assert planned(shared_lake) == set()
    state = converge(shared_lake.defs, shared_lake.instance)
    assert state.outcomes == []


def test_a_fresh_dagster_home_on_an_existing_lake_launches_no_run(shared_lake, tmp_path):
    fresh = instance_for(tmp_path / "another_home")
    try:
        assert converge(shared_lake.defs, fresh).outcomes == []
    finally:
        fresh.dispose()


def test_plan_lists_exactly_what_sync_then_builds_after_late_data(lake):
    restate(lake.landing, days(DAY, 3)[-1], SIM)  # a past day's ad stats re-exported
    plan = plan_for(lake.defs.assets, lake.warehouse, lake.serving(), lake.landing)
    assert {s.reason for s in plan.stale if s.asset.path[0] == "raw"} == {"landing changed"}
    expected = planned(lake)

    state = converge(lake.defs, lake.instance)
    assert built(state) == expected
    assert planned(lake) == set()
    assert converge(lake.defs, lake.instance).outcomes == []


def test_a_sql_edit_rebuilds_the_mart_and_its_readers_for_every_partition(lake, tmp_path):
    defs = with_mart_sql(lake, tmp_path / "edited", _edited())

    plan = plan_for(defs.assets, lake.warehouse, lake.serving(), lake.landing)
    mine = [s for s in plan.stale if s.asset == AssetKey(["marketing", MART])]
    assert {s.partition for s in mine} == {d.isoformat() for d in days(DAY, 3)}
    assert {s.reason for s in mine} == {"code changed"}
    assert mine[0].detail == f"marts/marketing/{MART}.sql"
    readers = AssetSelection.assets(AssetKey(["marketing", MART])).downstream(include_self=False)
    expected_readers = readers.resolve(defs.resolve_asset_graph())
    assert expected_readers  # the active-campaigns view, the P&L's marketing cost
    assert {s.asset for s in plan.stale} - {mine[0].asset} == expected_readers  # none upstream
    expected = planned(lake, defs)

    state = converge(defs, lake.instance)
    assert built(state) == expected
    assert planned(lake, defs) == set()
    cost = lake.warehouse.read(f"marketing.{MART}").column("cost_per_lead").to_pylist()
    assert all(v is None or round(v, 3) == v for v in cost)


def test_on_change_manual_keeps_every_partition_and_last_n_days_rebuilds_only_those(lake, tmp_path):
    manual = with_mart_sql(lake, tmp_path / "manual", _edited(), on_change="manual")
    plan = plan_for(manual.assets, lake.warehouse, lake.serving(), lake.landing)
    assert plan.stale == [] and len(plan.kept) == 3  # listed, not rebuilt
    assert converge(manual, lake.instance).outcomes == []

    last = days(DAY, 3)[-1]
    closed = dt.date.fromisoformat(daily_partitions.get_last_partition_key())
    recent = f"last {(closed - last).days + 1} days"  # the window reaches the last test day only
    defs = with_mart_sql(lake, tmp_path / "recent", _edited(), on_change=recent)
    plan = plan_for(defs.assets, lake.warehouse, lake.serving(), lake.landing)
    mine = {s.partition for s in plan.stale if s.asset.path[-1] == MART}
    assert mine == {last.isoformat()}
    assert {k.partition for k in plan.kept} == {d.isoformat() for d in days(DAY, 2)}
    assert (f"marketing/{MART}", last.isoformat()) in built(converge(defs, lake.instance))
    assert planned(lake, defs) == set()


def test_a_serving_view_edit_is_planned_from_the_record_its_comment_keeps(lake, tmp_path):
    view, folder = "mkt_active_campaigns_v", tmp_path / "view"
    folder.mkdir()
    (folder / f"{view}.yml").write_text((MARKETING / f"{view}.yml").read_text())
    sql = (MARKETING / f"{view}.sql").read_text()
    assert "latest.latest_day - 7" in sql
    (folder / f"{view}.sql").write_text(
        sql.replace("latest.latest_day - 7", "latest.latest_day - 6")
    )
    defs = build_definitions(lake.settings, marts=[build_mart(folder, view)])

    plan = plan_for(defs.assets, lake.warehouse, lake.serving(), lake.landing)
    assert [(s.asset.path[-1], s.reason, s.detail) for s in plan.stale] == [
        (view, "code changed", f"marts/marketing/{view}.sql")
    ]
    assert built(converge(defs, lake.instance)) == {(f"marketing/{view}", None)}
    assert planned(lake, defs) == set()


def test_a_comment_or_formatting_edit_rebuilds_nothing(shared_lake, tmp_path):
    sql = (MARKETING / f"{MART}.sql").read_text()
    edited = "-- reviewed\n" + sql.replace("    select\n", "    SELECT  -- the columns\n")
    defs = with_mart_sql(shared_lake, tmp_path / "comments", edited)
    assert planned(shared_lake, defs) == set()
    assert converge(defs, shared_lake.instance).outcomes == []


def test_a_file_rewritten_while_its_raw_step_reads_it_stays_out_of_date(lake, monkeypatch):
    import marts_project.raw.assets as raw_assets

    day = days(DAY, 3)[-1]
    original = raw_assets.parse_landing_files

    def rewritten_during_read(files, spec, duckdb):
        result = original(files, spec, duckdb)
        if spec.name == "mkt_ad_stats":  # the source re-exports while the step reads
            restate(lake.landing, day, SIM)
        return result

    monkeypatch.setattr(raw_assets, "parse_landing_files", rewritten_during_read)
    refresh_days(lake.defs, lake.instance, day, day)
    monkeypatch.setattr(raw_assets, "parse_landing_files", original)

    plan = plan_for(lake.defs.assets, lake.warehouse, lake.serving(), lake.landing)
    raw = {(s.partition, s.reason) for s in plan.stale if s.asset.path[-1] == "raw_mkt_ad_stats"}
    assert (day.isoformat(), "landing changed") in raw
    # and the mart built from the old version of the file is not called fresh
    mart = next(m for m in ALL_MARTS if m.contract.name == MART)
    now = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(2), dt.UTC)
    freshness = partition_freshness(
        mart,
        lake.serving(),
        lake.landing,
        now,
        1,
        stale=stale_partitions(lake.defs.assets, lake.warehouse, lake.serving(), lake.landing),
        built=lake.warehouse.build_records(f"marketing.{MART}"),
    )
    assert [f.status for f in freshness] == ["stale"]
    # and the SLO history reads the same records: the new version was read by no raw build
    arrivals = read_history(
        mart.contract,
        mart.asset.key,
        lake.instance,
        lake.warehouse,
        lake.landing,
        now - dt.timedelta(days=30),
        dt.datetime.now(dt.UTC),
    ).arrivals
    versions = [a for a in arrivals if a.source == "mkt_ad_stats" and a.file_day == day]
    assert len(versions) == 2 and versions[0].read_at and versions[1].read_at is None


def test_plan_is_the_same_off_utc(lake, monkeypatch):
    restate(lake.landing, days(DAY, 3)[-1], SIM)
    in_utc = planned(lake)
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert planned(lake) == in_utc
        assert built(converge(lake.defs, lake.instance)) == in_utc
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_build_records_live_in_the_lake_beside_the_data(shared_lake):
    records = shared_lake.warehouse.build_records("raw.raw_mkt_ad_stats")
    first = records[DAY.isoformat()]
    own = f"mkt_ad_stats/{DAY}.csv"
    assert first.landing[own] == shared_lake.landing.fingerprints()[own]
    assert (
        first.code
        == shared_lake.defs.resolve_asset_graph()
        .get(AssetKey(["raw", "raw_mkt_ad_stats"]))
        .code_version
    )
    table = shared_lake.warehouse.load_table("raw.raw_mkt_ad_stats")
    assert f"marts.built.{DAY}" in table.properties  # any engine reading the table sees it
    assert isinstance(first.at, dt.datetime)


def with_intermediate_sql(lake: Lakehouse, folder: Path, edit) -> object:
    """The deployment with `int_mkt_campaign_daily`'s SQL edited by `edit`."""
    shutil.copytree(INTERMEDIATE, folder)
    sql_file = folder / f"{INT}.sql"
    edited = edit(sql_file.read_text())
    assert edited != sql_file.read_text()
    sql_file.write_text(edited)
    table = next(a for a in sql_layer("intermediate", folder) if a.key.path[-1] == INT)
    return build_definitions(lake.settings, tables=[table])


def _snapshots(lake: Lakehouse) -> dict[str, int | None]:
    return {
        t: (s.snapshot_id if (s := lake.warehouse.load_table(t).current_snapshot()) else None)
        for t in lake.warehouse.table_identifiers()
    }


def test_a_column_no_reader_reads_rebuilds_the_table_and_nothing_downstream(lake, tmp_path):
    def added(sql: str) -> str:
        return sql.replace(
            "coalesce(l.mqls, 0) as mqls\n",
            "coalesce(l.mqls, 0) as mqls,\n        coalesce(a.clicks, 0) * 2 as double_clicks\n",
        )

    defs = with_intermediate_sql(lake, tmp_path / "intermediate", added)
    plan = plan_for(defs.assets, lake.warehouse, lake.serving(), lake.landing)
    assert {(s.asset.path[-1], s.reason) for s in plan.stale} == {(INT, "code changed")}
    before = _snapshots(lake)

    state = converge(defs, lake.instance)
    assert built(state) == {(f"intermediate/{INT}", d.isoformat()) for d in days(DAY, 3)}
    after = _snapshots(lake)
    assert {t for t in after if after[t] != before[t]} == {f"intermediate.{INT}"}
    assert "double_clicks" in lake.warehouse.read(f"intermediate.{INT}").column_names
    assert planned(lake, defs) == set()
    assert converge(defs, lake.instance).outcomes == []


def test_a_column_a_reader_reads_rebuilds_that_reader(lake, tmp_path):
    def changed(sql: str) -> str:  # mqls now counts every lead: read by the marketing marts
        return sql.replace("count(*) filter (where is_mql) as mqls", "count(*) as mqls")

    defs = with_intermediate_sql(lake, tmp_path / "intermediate", changed)
    expected = planned(lake, defs)
    readers = {asset.split("/")[-1] for asset, _ in expected} - {INT}
    assert MART in readers

    state = converge(defs, lake.instance)
    assert built(state) == expected
    assert planned(lake, defs) == set()


def test_a_rebuild_on_the_same_landing_files_rebuilds_nothing_downstream(lake):
    staging = {AssetKey(["staging", "stg_mkt_ad_stats"])}
    day = days(DAY, 3)[1]
    outcomes = refresh_days(lake.defs, lake.instance, day, day, select=staging)
    assert [list(o.materialized) for o in outcomes] == [
        [("staging/stg_mkt_ad_stats", day.isoformat())]
    ]
    assert planned(lake) == set()
    assert converge(lake.defs, lake.instance).outcomes == []


def test_a_runs_checks_read_a_tables_records_once_and_again_after_it_is_written(tmp_path):
    """The freshness checks of a run's marts share their lineage: its records are read once
    per run, but never kept over a write of the table by this process."""
    import pyarrow as pa

    from marts_project.core.versions import build_properties
    from marts_project.resources.iceberg import IcebergWarehouse

    warehouse = IcebergWarehouse(
        catalog_uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=tmp_path.as_uri()
    )
    rows = pa.table({"day": pa.array([DAY], pa.date32()), "n": [1]})

    def write(code: str) -> None:
        records = build_properties([DAY.isoformat()], code, None, "run-1", 1, 0.1)
        warehouse.overwrite_days(
            "staging.t", rows, "day", DAY, DAY + dt.timedelta(1), None, None, records
        )

    write("first")
    assert warehouse.build_records("staging.t", "run-1")[DAY.isoformat()].code == "first"
    write("second")  # the same run writes it again: what the checks read next is the new one
    assert warehouse.build_records("staging.t", "run-1")[DAY.isoformat()].code == "second"
    loads = []
    catalog = warehouse.catalog()
    original = catalog.load_table
    catalog.load_table = lambda identifier: loads.append(identifier) or original(identifier)
    for _ in range(3):
        assert warehouse.build_records("staging.t", "run-1")[DAY.isoformat()].code == "second"
    assert loads == []  # read once for the run
    assert warehouse.build_records("staging.t", "run-2")[DAY.isoformat()].code == "second"
    assert loads == ["staging.t"]  # another run reads it again


@pytest.mark.quick
def test_a_records_views_are_its_own_and_asking_for_them_changes_nothing_it_stores():
    """A plan asks each record for its views once per reader partition: they are kept on the
    record, which stays equal to and encodes like one never asked."""
    at = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    columns = {"a": "code-a", "b": "code-b", "(rows)": "code-rows"}
    record = BuildRecord("c1", at, "run", inputs={"raw.x|2026-11-01": "v1"}, columns=columns)
    twin = BuildRecord("c1", at, "run", inputs={"raw.x|2026-11-01": "v1"}, columns=columns)
    other = BuildRecord("c1", at, "run", inputs={"raw.x|2026-11-01": "v2"}, columns=columns)

    assert record.view(["a"]) == record.view(("a",)) == twin.view({"a"})
    assert record.view(["a"]) != record.view(["b"])  # each column's code
    assert record.view(["a"]) != other.view(["a"])  # what it was computed from
    assert record == twin and record.encode() == twin.encode()
    assert BuildRecord.decode(record.encode()) == record
