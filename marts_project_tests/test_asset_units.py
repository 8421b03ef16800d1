"""Assets called directly on tiny tables (`build_asset_context`): one rule each, no Dagster run,
no warehouse."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
from dagster import build_asset_context

from marts_project.resources.duck import UtcDuckDB
from marts_project.resources.pii import PiiMasking
from marts_project.staging.assets import staging_assets

pytestmark = pytest.mark.quick  # the unit tier: `pytest -m quick`

DAY = dt.date(2026, 10, 5)


def _stage(name: str, raw: pa.Table) -> pa.Table:
    """Staging table `name` over its one raw input (named after the table its SQL reads)."""
    asset = next(a for a in staging_assets if a.key.path[-1] == name)
    (raw_input,) = asset.keys_by_input_name
    context = build_asset_context(partition_key=DAY.isoformat())
    return asset(
        context=context,
        duckdb=UtcDuckDB(database=":memory:"),
        pii=PiiMasking(),
        **{raw_input: raw},
    )


def test_a_restated_ad_row_replaces_the_earlier_export_of_the_same_ad_day():
    first = dt.datetime(2026, 10, 6, 1, tzinfo=dt.UTC)
    restated = first + dt.timedelta(days=1)
    raw = pa.table(
        {
            "stat_date": [DAY, DAY, DAY],
            "ad_id": ["ad_1", "ad_1", "ad_2"],
            "campaign_id": ["cmp_1", "cmp_1", "cmp_1"],
            "impressions": pa.array([100, 100, 50], pa.int64()),
            "clicks": pa.array([5, 5, 2], pa.int64()),
            "spend": pa.array([Decimal("1.00")] * 3, pa.decimal128(18, 2)),
            "currency": ["usd", "USD", "USD"],
            "conversions": pa.array([1, 3, 0], pa.int64()),
            "extracted_at": [restated, first, first],  # the later export comes first in the file
            "_source_line": pa.array([2, 3, 4], pa.int64()),
            "_source_file": ["mkt_ad_stats/2026-10-06.csv"] * 3,
            "_value_issues": pa.nulls(3, pa.string()),
        }
    )
    staged = {r["ad_id"]: r for r in _stage("stg_mkt_ad_stats", raw).to_pylist()}
    assert set(staged) == {"ad_1", "ad_2"}  # one row per ad and day
    assert staged["ad_1"]["conversions"] == 1  # the restatement (extracted later) wins
    assert staged["ad_1"]["extracted_at"] == restated
    assert staged["ad_1"]["currency"] == "USD"
