"""The wiring of one deployment: its resources, configured once from its settings and built
lazily, and its step executor. Beside the composition root (definitions.py), so the CLI,
benchmarks and tests get a resource without building Definitions."""

from collections.abc import Callable

import dagster
from dagster import (
    DagsterInstance,
    EnvVar,
    ExecutorDefinition,
    in_process_executor,
    multiprocess_executor,
)

from marts_project.governance.access import serving_plan
from marts_project.marts import ALL_MARTS
from marts_project.resources.audit_trail import AuditTrail
from marts_project.resources.duck import UtcDuckDB
from marts_project.resources.iceberg import IcebergWarehouse
from marts_project.resources.iceberg_io import IcebergIOManager
from marts_project.resources.landing import LandingZone
from marts_project.resources.pii import PiiMasking
from marts_project.resources.serving import ServingDatabase
from marts_project.settings import Settings

EXECUTORS = ("in_process", "multiprocess", "celery")


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
    serving = ServingDatabase(
        root=str(settings.serving_dir),
        plan={k: list(v) for k, v in serving_plan(m.contract for m in ALL_MARTS).items()},
        groups=dict(settings.serving_groups),
    )
    audit_s3 = s3 if settings.audit_root.startswith("s3://") else {}
    return {
        "audit": AuditTrail(root=settings.audit_root, anchor=settings.catalog_uri, **audit_s3),
        "warehouse": warehouse,
        "serving": serving,
        "iceberg_io": IcebergIOManager(warehouse=warehouse),
        "landing": LandingZone(root=settings.landing, **s3),
        # Every connection is pinned to UTC: day boundaries are UTC days on any machine.
        "duckdb": UtcDuckDB(database=":memory:"),
        "pii": PiiMasking(key=EnvVar("MARTS_PII_KEY"))
        if settings.pii_key_from_env
        else PiiMasking(),
    }


def records_reader(settings: Settings) -> Callable[[str], dict]:
    """table -> its build records, from the deployment's warehouse opened on first use (the
    automation condition judging updates by them is built long before it runs)."""
    opened: list[IcebergWarehouse] = []

    def records_of(identifier: str) -> dict:
        if not opened:
            opened.append(open_resource(settings, "warehouse"))
        return opened[0].build_records(identifier)

    return records_of


def open_resource(settings: Settings, key: str, instance: DagsterInstance | None = None):
    """A resource with its EnvVars resolved, for use outside a run (CLI, reports, tests).

    Given the command's Dagster instance it initializes on that one; without, Dagster makes an
    ephemeral instance for it (about 0.5 s of a command's start the first time)."""
    resource = {key: build_resources(settings)[key]}
    with dagster.build_resources(resource, instance=instance) as resources:
        return getattr(resources, key)


def executor_for(name: str) -> ExecutorDefinition:
    """The executor of a deployment's runs: the cluster's (`celery`) runs its steps in process
    too, as each run is one Celery task (`instance/celery_task.py`)."""
    if name == "in_process":
        return in_process_executor
    if name == "multiprocess":
        return multiprocess_executor
    if name == "celery":  # the cluster: a run is a Celery task, its steps run in its process
        return in_process_executor
    raise ValueError(f"MARTS_EXECUTOR={name!r}: expected one of {', '.join(EXECUTORS)}")
