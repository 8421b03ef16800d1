"""The scheduled table maintenance job, reporting what it removed."""

import dataclasses

from dagster import (
    AssetObservation,
    DefaultScheduleStatus,
    MetadataValue,
    OpExecutionContext,
    Output,
    job,
    op,
    schedule,
)

from marts_project.resources.iceberg import IcebergWarehouse
from marts_project.resources.maintenance import maintain


@op(description="Compact small files, expire old snapshots and delete orphan data files.")
def maintain_tables(context: OpExecutionContext, warehouse: IcebergWarehouse):
    reports = []
    for identifier in warehouse.table_identifiers():
        report = maintain(warehouse, identifier)
        reports.append(report)
        yield AssetObservation(
            asset_key=identifier.split("."),
            metadata={k: v for k, v in dataclasses.asdict(report).items() if k != "table"},
        )
    header = "| table | expired | compacted days | files before -> after | orphans deleted |"
    rows = [
        f"| {r.table} | {r.snapshots_expired} | {r.days_compacted} | "
        f"{r.data_files_before} -> {r.data_files_after} | {r.orphan_files_deleted} |"
        for r in reports
    ]
    yield Output(
        None,
        metadata={
            "tables": len(reports),
            "snapshots_expired": sum(r.snapshots_expired for r in reports),
            "days_compacted": sum(r.days_compacted for r in reports),
            "orphan_files_deleted": sum(r.orphan_files_deleted for r in reports),
            "orphan_bytes_deleted": sum(r.orphan_bytes_deleted for r in reports),
            "report": MetadataValue.md("\n".join([header, "|---|---|---|---|---|", *rows])),
        },
    )


@job(description="Weekly Iceberg table maintenance across every table of the catalog.")
def table_maintenance_job():
    maintain_tables()


@schedule(
    job=table_maintenance_job,
    cron_schedule="0 5 * * 0",  # Sundays at 05:00 UTC
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
def table_maintenance_schedule():
    return {}
