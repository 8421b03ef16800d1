"""int_*: cross-source joins that several marts share, built once."""

from pathlib import Path

import pyarrow as pa
from dagster import AssetExecutionContext, AssetIn
from dagster_duckdb import DuckDBResource

from marts_project.transform import daily_table, transform

INTERMEDIATE = "intermediate"
SQL = Path(__file__).parent


def _staging(*names: str) -> dict[str, AssetIn]:
    return {name: AssetIn(key_prefix="staging") for name in names}


@daily_table(
    INTERMEDIATE,
    "stat_date",
    ins=_staging("stg_mkt_ad_stats", "stg_mkt_leads", "stg_mkt_campaigns"),
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


@daily_table(
    INTERMEDIATE,
    "order_date",
    ins=_staging("stg_shop_orders", "stg_psp_payments", "stg_psp_refunds", "stg_wms_shipments"),
)
def int_orders_enriched(
    context: AssetExecutionContext,
    duckdb: DuckDBResource,
    stg_shop_orders: pa.Table,
    stg_psp_payments: pa.Table,
    stg_psp_refunds: pa.Table,
    stg_wms_shipments: pa.Table,
) -> pa.Table:
    """Order x its payments, refunds and first shipment: one order, one row, one definition."""
    return transform(
        context,
        duckdb,
        SQL / "int_orders_enriched.sql",
        {
            "stg_shop_orders": stg_shop_orders,
            "stg_psp_payments": stg_psp_payments,
            "stg_psp_refunds": stg_psp_refunds,
            "stg_wms_shipments": stg_wms_shipments,
        },
    )
