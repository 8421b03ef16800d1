"""Composition root: reads the deployment's settings once and wires assets to resources."""

from dagster import (
    AssetCheckKey,
    AssetSelection,
    Definitions,
    colored_console_logger,
    define_asset_job,
    definitions,
)

from marts_project.automation.maintenance_job import (
    table_maintenance_job,
    table_maintenance_schedule,
)
from marts_project.automation.schedules import (
    freshness_checks_schedule,
    monthly_catchup_schedule,
    nightly_reprocess_schedule,
)
from marts_project.automation.sensors import build_sensors
from marts_project.checks.contract_checks import build_contract_checks
from marts_project.cluster.executor import executor_for
from marts_project.intermediate.assets import intermediate_assets
from marts_project.marts import ALL_MARTS
from marts_project.marts.common import Mart
from marts_project.partitions import daily_partitions, monthly_partitions, weekly_partitions
from marts_project.progress import progress_logger
from marts_project.raw.assets import raw_assets
from marts_project.resources.data_folder import make_private
from marts_project.resources.deployment import build_resources
from marts_project.settings import Settings
from marts_project.staging.assets import staging_assets

SHARED_LAYERS = [*raw_assets, *staging_assets, *intermediate_assets]


def _marts_partitioned_by(partitions_def) -> list:
    return [m.asset for m in ALL_MARTS if m.asset.partitions_def == partitions_def]


MART_CHECKS = [check for mart in ALL_MARTS for check in build_contract_checks(mart)]


def _checks_named(*names: str) -> list[AssetCheckKey]:
    return [key for c in MART_CHECKS for key in c.check_keys if key.name in names]


# An SLO budget reads weeks of run history: judged hourly (freshness_checks_job), not by every
# refresh run.
NOT_IN_REFRESHES = AssetSelection.checks(*_checks_named("slo_budget"))

# Jobs by partitioning: a run covers one range of one partitioning (a Dagster rule).
daily_assets_job = define_asset_job(
    "daily_assets_job",
    selection=AssetSelection.assets(*SHARED_LAYERS, *_marts_partitioned_by(daily_partitions))
    - NOT_IN_REFRESHES,
    partitions_def=daily_partitions,
    description="Every day-partitioned table, raw to marts, for a day or a range of days.",
)
weekly_marts_job = define_asset_job(
    "weekly_marts_job",
    selection=AssetSelection.assets(*_marts_partitioned_by(weekly_partitions)) - NOT_IN_REFRESHES,
    partitions_def=weekly_partitions,
    description="Weekly aggregates for a week or a range of weeks.",
)
monthly_marts_job = define_asset_job(
    "monthly_marts_job",
    selection=AssetSelection.assets(*_marts_partitioned_by(monthly_partitions)) - NOT_IN_REFRESHES,
    partitions_def=monthly_partitions,
    description="Monthly aggregates for a month or a range of months.",
)
dimensions_job = define_asset_job(
    "dimensions_job",
    selection=AssetSelection.assets(*_marts_partitioned_by(None)) - NOT_IN_REFRESHES,
    description="Unpartitioned marts: dimensions and the serving views.",
)
REFRESH_JOBS = [daily_assets_job, weekly_marts_job, monthly_marts_job, dimensions_job]

freshness_checks_job = define_asset_job(
    "freshness_checks_job",
    selection=AssetSelection.checks(*_checks_named("partition_freshness", "slo_budget")),
    description="Per-partition freshness and SLO budgets of the marts (no materialization).",
)


def build_definitions(settings: Settings, marts: list[Mart] | None = None) -> Definitions:
    """All assets, checks, jobs and resources for one deployment (`marts` replaces the marts
    of the same names, e.g. to prove that a broken transform cannot publish)."""
    make_private(settings)
    replaced = {m.contract.name: m for m in marts or []}
    chosen = [replaced.get(m.contract.name, m) for m in ALL_MARTS]
    checks = MART_CHECKS if not marts else [c for m in chosen for c in build_contract_checks(m)]
    return Definitions(
        assets=[*SHARED_LAYERS, *(m.asset for m in chosen)],
        asset_checks=checks,
        jobs=[*REFRESH_JOBS, freshness_checks_job, table_maintenance_job],
        sensors=build_sensors(settings.sensor_interval_seconds, settings.sensors_running),
        schedules=[
            nightly_reprocess_schedule,
            monthly_catchup_schedule,
            freshness_checks_schedule,
            table_maintenance_schedule,
        ],
        resources=build_resources(settings),
        # the console logger stays every run's default; progress is used when a run asks for it
        loggers={"console": colored_console_logger, "progress": progress_logger},
        executor=executor_for(settings.executor),
    )


@definitions
def defs() -> Definitions:
    """The code location Dagster loads, built when loaded (not on import: importing this
    module reads no settings and creates nothing)."""
    return build_definitions(Settings.from_env())
