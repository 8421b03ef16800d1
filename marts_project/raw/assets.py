"""raw_*: landing files -> typed, day-partitioned Iceberg tables; bad rows -> raw.quarantine."""

import datetime as dt

import pyarrow as pa
from dagster import AssetExecutionContext, AssetsDefinition, MetadataValue
from dagster_duckdb import DuckDBResource
from pyiceberg.expressions import EqualTo

from marts_project.raw.sources import SourceSpec, source_specs
from marts_project.raw.validation import LandingFile, parse_landing_files
from marts_project.resources.iceberg import IcebergWarehouse
from marts_project.resources.landing import LandingZone
from marts_project.transform import iceberg_table, measured

RAW = "raw"
QUARANTINE_TABLE = "raw.quarantine"


class MissingLandingFileError(FileNotFoundError):
    """A partition was requested before its source delivered the day's file."""


def days_of(context: AssetExecutionContext) -> list[dt.date]:
    """The days of the run's partition window (one key or a whole range)."""
    window = context.partition_time_window
    start, end = window.start.date(), window.end.date()
    return [start + dt.timedelta(days=i) for i in range((end - start).days)]


def ingest(
    spec: SourceSpec,
    days: list[dt.date],
    landing: LandingZone,
    duckdb: DuckDBResource,
) -> tuple[pa.Table, pa.Table, dict[str, object]]:
    """Parse the source's landing files for `days`: (typed rows, quarantined rows, stats)."""
    files = []
    for day in days:
        if not landing.exists(spec.name, day):
            raise MissingLandingFileError(
                f"{spec.name}: no landing file for {day} at {landing.path(spec.name, day)}; "
                "the source has not delivered this day yet"
            )
        payload = landing.read_bytes(spec.name, day)
        files.append(LandingFile(payload, day, landing.key(spec.name, day)))
    parsed = parse_landing_files(files, spec, duckdb)
    published, quarantine, rows_in = parsed.valid, parsed.quarantine, parsed.rows_in
    ignored, carried = parsed.ignored_columns, parsed.carried_columns
    stats = {
        "rows_in": rows_in,
        "rows_published": published.num_rows,
        "rows_quarantined": quarantine.num_rows,
        "files_read": len(days),
        "ignored_columns": MetadataValue.text(", ".join(sorted(ignored)) or "none"),
        "carried_columns": MetadataValue.text(", ".join(sorted(carried)) or "none"),
    }
    return published, quarantine, stats


def build_raw_asset(spec: SourceSpec) -> AssetsDefinition:
    """One raw asset per landing source."""

    # Raw tables are requested by the landing sensor and the reprocessing schedules, never by
    # automation: only the landing zone knows when a source delivered.
    @iceberg_table(
        RAW,
        spec.date_column,
        name=f"raw_{spec.name}",
        description=spec.description,
        metadata={"landing/source": spec.name},
        automation_condition=None,
    )
    def _raw(
        context: AssetExecutionContext,
        landing: LandingZone,
        warehouse: IcebergWarehouse,
        duckdb: DuckDBResource,
    ) -> pa.Table:
        days = days_of(context)
        with measured(context, rows_in=None) as done:
            published, quarantine, stats = ingest(spec, days, landing, duckdb)
            done(published.num_rows)
        warehouse.overwrite_days(
            QUARANTINE_TABLE,
            quarantine,
            "partition_date",
            days[0],
            days[-1] + dt.timedelta(days=1),
            {"dagster.run_id": context.run_id},
            extra_filter=EqualTo("source", spec.name),
        )
        if stats["rows_quarantined"]:
            context.log.warning(
                f"{spec.name}: {stats['rows_quarantined']} of {stats['rows_in']} rows quarantined "
                f"in {QUARANTINE_TABLE}"
            )
        context.add_output_metadata(stats)
        return published

    return _raw


raw_assets = [build_raw_asset(spec) for spec in source_specs().values()]
