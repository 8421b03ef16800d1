"""Marketing marts (`mkt_*`)."""

from pathlib import Path

import pyarrow as pa
from dagster import AssetExecutionContext
from dagster_duckdb import DuckDBResource

from marts_project.marts.common import contract_for, daily_mart
from marts_project.transform import transform

SQL = Path(__file__).parent
CAMPAIGN_PERFORMANCE = contract_for(SQL, "mkt_campaign_performance_fact")


@daily_mart(CAMPAIGN_PERFORMANCE, {"int_mkt_campaign_daily": "intermediate"})
def mkt_campaign_performance_fact(
    context: AssetExecutionContext, duckdb: DuckDBResource, int_mkt_campaign_daily: pa.Table
) -> pa.Table:
    result = transform(
        context,
        duckdb,
        SQL / "mkt_campaign_performance_fact.sql",
        {"int_mkt_campaign_daily": int_mkt_campaign_daily},
    )
    return CAMPAIGN_PERFORMANCE.conform(result)
