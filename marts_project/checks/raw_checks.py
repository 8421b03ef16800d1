"""Checks on raw ingestion: a partition that quarantined too much blocks everything downstream."""

import pyarrow.compute as pc
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    asset_check,
)

from marts_project.checks.windows import run_window
from marts_project.lineage import asset_key_for_table
from marts_project.raw.assets import QUARANTINE_TABLE
from marts_project.raw.sources import SourceSpec, source_specs
from marts_project.resources.iceberg import IcebergWarehouse


def build_quarantine_check(spec: SourceSpec) -> AssetChecksDefinition:
    key = asset_key_for_table(f"raw_{spec.name}")

    @asset_check(
        asset=key,
        name="quarantine_share",
        blocking=True,
        description=f"At most {spec.max_quarantine_share:.0%} of a day's landing rows are "
        "quarantined; above that the source is broken and nothing downstream runs on it.",
    )
    def quarantine_share(
        context: AssetCheckExecutionContext, warehouse: IcebergWarehouse
    ) -> AssetCheckResult:
        start, end = run_window(context)
        published = warehouse.read(f"raw.raw_{spec.name}", spec.date_column, start, end).num_rows
        quarantine = warehouse.read(QUARANTINE_TABLE, "partition_date", start, end)
        rejected = int(pc.sum(pc.equal(quarantine.column("source"), spec.name)).as_py() or 0)
        share = rejected / max(1, rejected + published)
        return AssetCheckResult(
            passed=share <= spec.max_quarantine_share,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "rows_published": published,
                "rows_quarantined": rejected,
                "quarantine_share": round(share, 4),
                "max_quarantine_share": spec.max_quarantine_share,
            },
        )

    return quarantine_share


raw_checks = [build_quarantine_check(spec) for spec in source_specs().values()]
