"""stg_*: typed, deduplicated, conformed source tables with PII tokenized.

Every staging table is one raw table through its `.sql` file of the same name, so the assets
are built by one factory; the SQL is where each differs.
"""

from pathlib import Path

import pyarrow as pa
from dagster import AssetExecutionContext, AssetIn, AssetsDefinition
from dagster_duckdb import DuckDBResource

from marts_project.raw.sources import SourceSpec, source_specs
from marts_project.resources.pii import PiiMasking
from marts_project.resources.sql import run_sql
from marts_project.transform import daily_table, transform

STAGING = "staging"
SQL = Path(__file__).parent

# staging table -> (raw source it cleans, its day column, what it is)
STAGING_TABLES = {
    "stg_mkt_ad_stats": (
        "mkt_ad_stats",
        "stat_date",
        "Ad stats per ad and day, latest restatement.",
    ),
    "stg_mkt_leads": ("mkt_crm_leads", "lead_date", "CRM leads; e-mail tokenized, name dropped."),
    "stg_mkt_campaigns": ("mkt_campaigns", "snapshot_date", "The campaign catalog each day."),
    "stg_shop_orders": ("shop_orders", "order_date", "Orders, one row each; e-mail tokenized."),
    "stg_psp_payments": ("psp_payments", "order_date", "Payments by the order date they pay."),
    "stg_psp_refunds": ("psp_refunds", "order_date", "Refunds by the order date they refund."),
    "stg_wms_shipments": ("wms_shipments", "order_date", "Shipments by the order date they ship."),
    "stg_wms_inventory": ("wms_inventory", "snapshot_date", "End-of-day stock per warehouse/SKU."),
    "stg_wms_warehouses": ("wms_warehouses", "snapshot_date", "Warehouse master data each day."),
}


def dedupe_sql(spec: SourceSpec) -> str:
    """One row per key of the source contract: the winner its rule names (sources.yml)."""
    key = ", ".join(f'"{column}"' for column in spec.key)
    return (
        f"select * from raw qualify row_number() over (partition by {key} "
        f"order by {spec.dedupe_order()}) = 1"
    )


def build_staging_asset(name: str, source: str, day_column: str, doc: str) -> AssetsDefinition:
    raw_name = f"raw_{source}"
    assert source in source_specs(), f"{name}: unknown landing source {source}"
    spec = source_specs()[source]

    @daily_table(
        STAGING,
        day_column,
        name=name,
        description=doc,
        ins={"raw_table": AssetIn(key=["raw", raw_name])},
    )
    def _staging(
        context: AssetExecutionContext,
        duckdb: DuckDBResource,
        pii: PiiMasking,
        raw_table: pa.Table,
    ) -> pa.Table:
        deduplicated = run_sql(duckdb, dedupe_sql(spec), {"raw": raw_table})
        return transform(
            context, duckdb, SQL / f"{name}.sql", {raw_name: deduplicated}, pii_key=pii.key
        )

    return _staging


staging_assets = [build_staging_asset(name, *spec) for name, spec in STAGING_TABLES.items()]
