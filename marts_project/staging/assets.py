"""stg_*: typed, deduplicated, conformed source tables with PII tokenized."""

from pathlib import Path

import pyarrow as pa
from dagster import AssetExecutionContext, AssetIn
from dagster_duckdb import DuckDBResource

from marts_project.resources.pii import PiiMasking
from marts_project.transform import daily_table, transform

STAGING = "staging"
SQL = Path(__file__).parent


@daily_table(STAGING, "stat_date", ins={"raw_mkt_ad_stats": AssetIn(key_prefix="raw")})
def stg_mkt_ad_stats(
    context: AssetExecutionContext, duckdb: DuckDBResource, raw_mkt_ad_stats: pa.Table
) -> pa.Table:
    """Ad-platform stats per ad and day, latest restatement only."""
    return transform(
        context, duckdb, SQL / "stg_mkt_ad_stats.sql", {"raw_mkt_ad_stats": raw_mkt_ad_stats}
    )


@daily_table(STAGING, "lead_date", ins={"raw_mkt_crm_leads": AssetIn(key_prefix="raw")})
def stg_mkt_leads(
    context: AssetExecutionContext,
    duckdb: DuckDBResource,
    pii: PiiMasking,
    raw_mkt_crm_leads: pa.Table,
) -> pa.Table:
    """CRM leads, one row each, e-mail tokenized and name dropped."""
    return transform(
        context,
        duckdb,
        SQL / "stg_mkt_leads.sql",
        {"raw_mkt_crm_leads": raw_mkt_crm_leads},
        pii_key=pii.key,
    )


@daily_table(STAGING, "snapshot_date", ins={"raw_mkt_campaigns": AssetIn(key_prefix="raw")})
def stg_mkt_campaigns(
    context: AssetExecutionContext, duckdb: DuckDBResource, raw_mkt_campaigns: pa.Table
) -> pa.Table:
    """The campaign catalog as it was each day."""
    return transform(
        context, duckdb, SQL / "stg_mkt_campaigns.sql", {"raw_mkt_campaigns": raw_mkt_campaigns}
    )
