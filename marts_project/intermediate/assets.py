"""int_*: cross-source joins that several marts share, built once."""

from pathlib import Path

import pyarrow as pa
from dagster import AssetExecutionContext, AssetIn
from dagster_duckdb import DuckDBResource

from marts_project.transform import daily_table, transform

INTERMEDIATE = "intermediate"
SQL = Path(__file__).parent


@daily_table(
    INTERMEDIATE,
    "stat_date",
    ins={
        "stg_mkt_ad_stats": AssetIn(key_prefix="staging"),
        "stg_mkt_leads": AssetIn(key_prefix="staging"),
        "stg_mkt_campaigns": AssetIn(key_prefix="staging"),
    },
)
def int_mkt_campaign_daily(
    context: AssetExecutionContext,
    duckdb: DuckDBResource,
    stg_mkt_ad_stats: pa.Table,
    stg_mkt_leads: pa.Table,
    stg_mkt_campaigns: pa.Table,
) -> pa.Table:
    """Campaign x day: ad activity, spend and CRM leads joined on the catalog of that day."""
    return transform(
        context,
        duckdb,
        SQL / "int_mkt_campaign_daily.sql",
        {
            "stg_mkt_ad_stats": stg_mkt_ad_stats,
            "stg_mkt_leads": stg_mkt_leads,
            "stg_mkt_campaigns": stg_mkt_campaigns,
        },
    )
