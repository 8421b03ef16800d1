"""IO manager storing Arrow tables in Iceberg; a partitioned output replaces exactly its days.

Why our own and not dagster-iceberg 0.3.14: its handler reads `context.partition_key`, which
raises on a partition-range run (a single-run backfill), so a 90-day backfill would have to be 90
processes. Here a range run is one commit over its whole time window, and it reports the row
count and Iceberg snapshot id Dagster shows per materialization.
"""

import time

import pyarrow as pa
from dagster import (
    AssetKey,
    ConfigurableIOManager,
    InitResourceContext,
    InputContext,
    MetadataValue,
    OutputContext,
    ResourceDependency,
)

from marts_project.partitions import day_window
from marts_project.resources.iceberg import IcebergWarehouse, WriteResult
from marts_project.versions import (
    BLOCKING_FAILED_METADATA,
    CODE_PARTS_METADATA,
    CODE_VERSION_METADATA,
    LANDING_METADATA,
    build_properties,
)

PARTITION_COLUMN = "partition_expr"  # asset metadata key naming the day column, as dagster-iceberg


def table_identifier(asset_key: AssetKey) -> str:
    """Asset key ["staging", "stg_x"] is Iceberg table `staging.stg_x`."""
    return ".".join(asset_key.path)


def write_metadata(result: WriteResult) -> dict[str, object]:
    """Materialization metadata for one Iceberg commit."""
    return {
        "dagster/row_count": result.rows,
        "iceberg/table": result.table,
        "iceberg/snapshot_id": MetadataValue.text(str(result.snapshot_id)),
        "iceberg/files_added": result.files_added,
        "iceberg/bytes_added": result.bytes_added,
    }


_RUN_CACHE: dict[tuple, pa.Table] = {}
CACHE_MAX_ROWS = 5_000_000  # above this an input is re-read from Iceberg instead of held


def _cache_key(run_id: str, identifier: str, start, end) -> tuple:
    return (run_id, identifier, start, end)


def _remember(run_id: str, identifier: str, start, end, table: pa.Table) -> None:
    """Keep what this run just published, so its downstream steps read it without a scan."""
    for key in [k for k in _RUN_CACHE if k[0] != run_id]:
        del _RUN_CACHE[key]  # another run's tables: gone
    if table.num_rows <= CACHE_MAX_ROWS:
        _RUN_CACHE[_cache_key(run_id, identifier, start, end)] = table


def read_in_run(
    run_id: str,
    warehouse: IcebergWarehouse,
    identifier: str,
    column: str | None = None,
    start=None,
    end=None,
) -> pa.Table:
    """Rows of `identifier` for [start, end): this run's just-published output when it wrote
    exactly that window, else an Iceberg scan pruned to it."""
    cached = _RUN_CACHE.get(_cache_key(run_id, identifier, start, end))
    if cached is not None:
        return cached
    return warehouse.read(identifier, column, start, end)


class IcebergIOManager(ConfigurableIOManager):
    """Arrow in, Arrow out; partition windows become Iceberg `day` filters. Marts do not write
    through it: each publishes itself (write-audit-publish, serving; `marts/common.py`)."""

    warehouse: ResourceDependency[IcebergWarehouse]

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """Drop the run's kept outputs when it ends: a process that runs the next chunk of a
        backfill must not hold this one's tables while it reads its own."""
        for key in [k for k in _RUN_CACHE if k[0] == context.run_id]:
            del _RUN_CACHE[key]

    def handle_output(self, context: OutputContext, obj: pa.Table) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        identifier = table_identifier(context.asset_key)
        properties = {"dagster.run_id": context.run_id}
        column, start, end = None, None, None
        if window := day_window(context):
            column = context.definition_metadata[PARTITION_COLUMN]
            start, end = window.start, window.end
            properties["dagster.partitions"] = str(window)
        records = self._build_records(context, obj.num_rows)
        if column:
            result = self.warehouse.overwrite_days(
                identifier, obj, column, start, end, properties, records=records
            )
        else:
            result = self.warehouse.replace_all(identifier, obj, properties, records=records)
        metadata = write_metadata(result)
        _remember(context.run_id, identifier, start, end, obj)
        metadata["write_seconds"] = round(time.perf_counter() - wall, 3)
        metadata["write_cpu_seconds"] = round(time.process_time() - cpu, 3)
        context.add_output_metadata(metadata)

    @staticmethod
    def _build_records(context: OutputContext, rows: int) -> dict[str, str]:
        """The build records this write commits with its data (`versions.py`): the asset's code
        version and, for a raw table, the landing file versions each partition read."""
        output = context.output_metadata
        landing = output.get(LANDING_METADATA)
        blocked = output.get(BLOCKING_FAILED_METADATA)
        transform = output.get("transform_seconds")
        parts = context.definition_metadata.get(CODE_PARTS_METADATA)
        return build_properties(
            context.asset_partition_keys if context.has_asset_partitions else None,
            str(context.definition_metadata.get(CODE_VERSION_METADATA, "")),
            parts.data if parts is not None else None,
            context.run_id,
            rows,
            float(transform.value) if transform is not None else 0.0,
            landing.value if landing is not None else None,
            blocked.value if blocked is not None else (),
        )

    def load_input(self, context: InputContext) -> pa.Table:
        """The upstream rows for this step's window: from this run's own just-published output
        when it wrote exactly that window (no scan), else an Iceberg scan pruned to it."""
        identifier = table_identifier(context.asset_key)
        start = end = column = None
        if window := day_window(context):
            column = context.upstream_output.definition_metadata[PARTITION_COLUMN]
            start, end = window.start, window.end
        return read_in_run(
            context.step_context.run_id, self.warehouse, identifier, column, start, end
        )
