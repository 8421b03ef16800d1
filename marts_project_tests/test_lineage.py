"""Column lineage is derived from the SQL, and a short-lived command reads it from the file
cache instead of walking the query again, without ever changing the answer."""

import pyarrow as pa
import pytest
from dagster import TableColumnLineage, deserialize_value

from marts_project.core import lineage

pytestmark = pytest.mark.quick  # the unit tier: `pytest -m quick`

SQL = "select campaign_id, spend / nullif(clicks, 0) as cost_per_click from stg_mkt_ad_stats"
INPUTS = {
    "stg_mkt_ad_stats": pa.schema(
        [("campaign_id", pa.string()), ("spend", pa.float64()), ("clicks", pa.int64())]
    )
}
OUTPUTS = ["campaign_id", "cost_per_click"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MARTS_CACHE_DIR", str(tmp_path))
    lineage._column_lineage.cache_clear()  # as a new process would start
    yield tmp_path / "lineage"
    lineage._column_lineage.cache_clear()


def _deps(answer) -> dict[str, set[tuple[str, str]]]:
    return {
        column: {(d.asset_key.to_user_string(), d.column_name) for d in deps}
        for column, deps in answer.deps_by_column.items()
    }


def test_each_output_column_names_the_input_columns_it_is_computed_from(cache):
    answer = lineage.column_lineage(SQL, INPUTS, OUTPUTS)
    assert _deps(answer) == {
        "campaign_id": {("staging/stg_mkt_ad_stats", "campaign_id")},
        "cost_per_click": {
            ("staging/stg_mkt_ad_stats", "spend"),
            ("staging/stg_mkt_ad_stats", "clicks"),
        },
    }


def test_a_new_process_reads_the_walked_answer_from_the_cache(cache, monkeypatch):
    walked = lineage.column_lineage(SQL, INPUTS, OUTPUTS)
    assert len(list(cache.glob("*.json"))) == 1
    lineage._column_lineage.cache_clear()
    monkeypatch.setattr(lineage, "_walk_lineage", pytest.fail)  # must not walk again
    assert lineage.column_lineage(SQL, INPUTS, OUTPUTS) == walked


def test_changed_sql_or_inputs_are_walked_anew(cache):
    lineage.column_lineage(SQL, INPUTS, OUTPUTS)
    renamed = SQL.replace("clicks", "impressions")
    schema = pa.schema(
        [("campaign_id", pa.string()), ("spend", pa.float64()), ("impressions", pa.int64())]
    )
    answer = lineage.column_lineage(renamed, {"stg_mkt_ad_stats": schema}, OUTPUTS)
    assert ("staging/stg_mkt_ad_stats", "impressions") in _deps(answer)["cost_per_click"]
    assert len(list(cache.glob("*.json"))) == 2


def test_a_torn_cache_file_is_walked_again_and_rewritten(cache):
    walked = lineage.column_lineage(SQL, INPUTS, OUTPUTS)
    (entry,) = cache.glob("*.json")
    entry.write_text('{"__class__": "TableColumnLin')
    lineage._column_lineage.cache_clear()
    assert lineage.column_lineage(SQL, INPUTS, OUTPUTS) == walked
    assert deserialize_value(entry.read_text(), TableColumnLineage) == walked


def test_an_unwritable_cache_only_costs_the_walk(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("MARTS_CACHE_DIR", str(blocked))
    lineage._column_lineage.cache_clear()
    try:
        assert _deps(lineage.column_lineage(SQL, INPUTS, OUTPUTS))["campaign_id"]
    finally:
        lineage._column_lineage.cache_clear()


def test_the_tables_a_query_reads_come_from_the_cache_in_a_new_process(cache, monkeypatch):
    sql = "with recent as (select * from stg_shop_orders) select * from recent join int_x using (k)"
    lineage.sql_inputs.cache_clear()
    assert lineage.sql_inputs(sql) == ("int_x", "stg_shop_orders")  # CTEs are not inputs
    lineage.sql_inputs.cache_clear()
    monkeypatch.setattr(lineage, "_parse_inputs", pytest.fail)  # must not parse again
    assert lineage.sql_inputs(sql) == ("int_x", "stg_shop_orders")
    lineage.sql_inputs.cache_clear()
