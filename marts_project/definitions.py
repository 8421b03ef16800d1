"""Composition root: reads the deployment's settings once and wires assets to resources. The code
location Dagster loads (code server, run workers, Celery workers): its process is set up first."""

import functools

from marts_project import process

process.set_up()  # before pyarrow is imported: Arrow picks its allocator then

from dagster import AssetsDefinition, Definitions, colored_console_logger, definitions

from marts_project.assets import SHARED_LAYERS
from marts_project.automation.conditions import automated
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
from marts_project.deployment import build_resources, executor_for, records_reader
from marts_project.execution.jobs import MART_CHECKS, REFRESH_JOBS, freshness_checks_job
from marts_project.execution.progress import progress_logger
from marts_project.marts import ALL_MARTS
from marts_project.marts.common import Mart
from marts_project.observability.contract_checks import build_contract_checks
from marts_project.resources.data_folder import make_private
from marts_project.settings import Settings


def build_definitions(
    settings: Settings,
    marts: list[Mart] | None = None,
    tables: list[AssetsDefinition] | None = None,
) -> Definitions:
    """All assets, checks, jobs and resources for one deployment (`marts` replaces the marts
    of the same names, `tables` the staging or intermediate tables of the same keys: e.g. to
    prove that a broken transform cannot publish, or what an edit rebuilds)."""
    make_private(settings)
    replaced = {m.contract.name: m for m in marts or []}
    chosen = [replaced.get(m.contract.name, m) for m in ALL_MARTS]
    edited = {key: a for a in tables or [] for key in a.keys}
    layers = [edited.get(next(iter(a.keys)), a) for a in SHARED_LAYERS]
    checks = MART_CHECKS if not marts else [c for m in chosen for c in build_contract_checks(m)]
    records_of = records_reader(settings)
    return Definitions(
        assets=[automated(a, records_of) for a in [*layers, *(m.asset for m in chosen)]],
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
    return _deployment(Settings.from_env())


@functools.cache
def _deployment(settings: Settings) -> Definitions:
    """Built once per process and settings: a Celery worker loads the code location again for
    every step it runs (twice: to plan the step, then to run it), which cost a cluster step
    more than its body at demo size."""
    return build_definitions(settings)
