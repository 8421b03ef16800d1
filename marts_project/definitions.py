"""Composition root: reads the deployment's settings once and wires assets to resources."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    Definitions,
    EnvVar,
    define_asset_job,
    in_process_executor,
    multiprocess_executor,
)
from dagster_duckdb import DuckDBResource

from marts_project.checks.contract_checks import build_contract_checks
from marts_project.intermediate import assets as intermediate
from marts_project.marts.marketing import assets as marketing
from marts_project.partitions import daily_partitions
from marts_project.raw.assets import raw_assets
from marts_project.resources.iceberg import IcebergWarehouse
from marts_project.resources.iceberg_io import IcebergIOManager
from marts_project.resources.landing import LandingZone
from marts_project.resources.pii import PiiMasking
from marts_project.settings import Settings
from marts_project.staging import assets as staging

MART_CONTRACTS = {marketing.mkt_campaign_performance_fact: marketing.CAMPAIGN_PERFORMANCE}

daily_assets_job = define_asset_job(
    "daily_assets_job",
    selection=AssetSelection.all(),
    partitions_def=daily_partitions,
    description="Every day-partitioned table, raw to marts, for a day or a range of days.",
)


def build_resources(settings: Settings) -> dict[str, object]:
    """One resource dict per deployment; the same keys everywhere, secrets only via EnvVar."""
    s3 = {}
    if settings.uses_s3:
        s3 = {
            "s3_endpoint": settings.s3_endpoint,
            "s3_region": settings.s3_region,
            "s3_access_key_id": EnvVar("AWS_ACCESS_KEY_ID"),
            "s3_secret_access_key": EnvVar("AWS_SECRET_ACCESS_KEY"),
        }
    warehouse = IcebergWarehouse(
        catalog_uri=settings.catalog_uri, warehouse=settings.warehouse, **s3
    )
    return {
        "warehouse": warehouse,
        "iceberg_io": IcebergIOManager(warehouse=warehouse),
        "landing": LandingZone(root=settings.landing, **s3),
        "duckdb": DuckDBResource(database=":memory:"),
        "pii": PiiMasking(key=EnvVar("MARTS_PII_KEY"))
        if settings.pii_key_from_env
        else PiiMasking(),
    }


def open_resource(settings: Settings, key: str):
    """A resource with its EnvVars resolved, for use outside a run (CLI, reports, tests)."""
    return build_resources(settings)[key].process_config_and_initialize()


def build_definitions(settings: Settings) -> Definitions:
    """All assets, checks, jobs and resources for one deployment."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    checks = [
        check
        for asset_def, contract in MART_CONTRACTS.items()
        for check in build_contract_checks(contract, asset_def.key)
    ]
    return Definitions(
        assets=[
            *raw_assets,
            staging.stg_mkt_ad_stats,
            staging.stg_mkt_leads,
            staging.stg_mkt_campaigns,
            intermediate.int_mkt_campaign_daily,
            *MART_CONTRACTS,
        ],
        asset_checks=checks,
        jobs=[daily_assets_job],
        resources=build_resources(settings),
        executor=in_process_executor if settings.in_process else multiprocess_executor,
    )


defs = build_definitions(Settings.from_env())
