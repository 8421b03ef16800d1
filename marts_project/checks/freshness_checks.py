"""The partition_freshness check of every partitioned mart (see marts_project/freshness.py)."""

import datetime as dt

from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)

from marts_project.freshness import WINDOW_DAYS, partition_freshness
from marts_project.marts.common import Mart
from marts_project.resources.iceberg import IcebergWarehouse
from marts_project.resources.landing import LandingZone

LATE = ("stale", "overdue", "not_built")


def build_freshness_check(mart: Mart) -> AssetChecksDefinition:
    sla = mart.contract.freshness_sla_hours

    @asset_check(
        asset=mart.asset.key,
        name="partition_freshness",
        blocking=False,
        description=f"Each of the last {WINDOW_DAYS} days was refreshed after its landing data "
        f"last changed, or within the {sla} h SLA of that change.",
    )
    def partition_freshness_check(
        warehouse: IcebergWarehouse, landing: LandingZone
    ) -> AssetCheckResult:
        rows = partition_freshness(mart, warehouse, landing, dt.datetime.now(dt.UTC))
        overdue = [r.day.isoformat() for r in rows if r.status == "overdue"]
        late = [r.day.isoformat() for r in rows if r.status in LATE]
        table = "| day | status | landing changed | refreshed |\n|---|---|---|---|\n" + "\n".join(
            f"| {r.day} | {r.status} | {r.landing_changed_at or '-'} | {r.refreshed_at or '-'} |"
            for r in rows
        )
        return AssetCheckResult(
            passed=not overdue,
            severity=AssetCheckSeverity.WARN,
            description=f"overdue: {', '.join(overdue)}" if overdue else None,
            metadata={
                "fresh_days": sum(r.status == "fresh" for r in rows),
                "waiting_days": len(late) - len(overdue),
                "overdue_days": len(overdue),
                "partitions": MetadataValue.md(table),
            },
        )

    return partition_freshness_check
