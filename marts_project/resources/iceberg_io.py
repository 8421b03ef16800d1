"""IO manager storing Arrow tables in Iceberg; a partitioned output replaces exactly its days.

Why our own and not dagster-iceberg 0.3.14: its handler reads `context.partition_key`, which
raises on a partition-range run (a single-run backfill), so a 90-day backfill would have to be 90
processes. Here a range run is one commit over its whole time window, and it reports the row
count and Iceberg snapshot id Dagster shows per materialization.
"""

import time
from collections.abc import Mapping

import pyarrow as pa
from dagster import (
    AssetKey,
    ConfigurableIOManager,
    InitResourceContext,
    InputContext,
    MetadataValue,
    OutputContext,
    PartitionsDefinition,
    ResourceDependency,
)

from marts_project.core.lineage import ALL_COLUMNS
from marts_project.core.partitions import day_window, input_keys, rows_per_partition
from marts_project.core.versions import (
    BLOCKING_FAILED_METADATA,
    CODE_PARTS_METADATA,
    CODE_VERSION_METADATA,
    COLUMNS_METADATA,
    LANDING_METADATA,
    READS_METADATA,
    BuildRecord,
    Lineage,
    build_properties,
    input_key,
    read_records,
)
from marts_project.resources.duck import keeps_interrupts
from marts_project.resources.iceberg import IcebergWarehouse, WriteResult

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


Records = dict[str | None, BuildRecord]
_RUN_CACHE: dict[tuple, tuple[pa.Table, Records]] = {}
CACHE_MAX_ROWS = 5_000_000  # above this an input is re-read from Iceberg instead of held
# (run id, step) -> input table -> (its partitions definition, the records of what was read)
_READ: dict[tuple[str, str], dict[str, tuple[PartitionsDefinition | None, Records]]] = {}


def _cache_key(run_id: str, identifier: str, start, end) -> tuple:
    return (run_id, identifier, start, end)


def _remember(
    run_id: str, identifier: str, start, end, table: pa.Table, records: dict[str, str]
) -> None:
    """Keep what this run just published (and its records), so its downstream steps read it
    without a scan."""
    for key in [k for k in _RUN_CACHE if k[0] != run_id]:
        del _RUN_CACHE[key]  # another run's tables: gone
    for key in [k for k in _READ if k[0] != run_id]:
        del _READ[key]
    if table.num_rows <= CACHE_MAX_ROWS:
        written = read_records(records)
        _RUN_CACHE[_cache_key(run_id, identifier, start, end)] = (table, written)


def read_in_run(
    run_id: str,
    warehouse: IcebergWarehouse,
    identifier: str,
    column: str | None = None,
    start=None,
    end=None,
) -> tuple[pa.Table, Records]:
    """Rows of `identifier` for [start, end) and the table's build records as they were read:
    this run's just-published output when it wrote exactly that window, else an Iceberg scan
    pruned to it."""
    cached = _RUN_CACHE.get(_cache_key(run_id, identifier, start, end))
    if cached is not None:
        return cached
    return warehouse.read_with_records(identifier, column, start, end)


def note_read(
    run_id: str,
    step: str,
    identifier: str,
    partitions_def: PartitionsDefinition | None,
    records: Records,
    start=None,
    end=None,
) -> None:
    """Remember the records of the input partitions step `step` read (those of its window)."""
    if start is not None and end is not None:
        first, last = start.isoformat(), end.isoformat()
        records = {k: r for k, r in records.items() if k is not None and first <= k < last}
    _READ.setdefault((run_id, step), {})[identifier] = (partitions_def, records)


def read_lineage(
    run_id: str,
    step: str,
    partitions_def: PartitionsDefinition | None,
    partition_keys: list[str] | None,
    reads: Mapping[str, list[str]],
    columns: Mapping[str, str],
) -> Lineage:
    """What a derived table's write read (`versions.Lineage`): per partition, the view of
    each input partition it read through the columns it read of it (its SQL's `reads`)."""
    read = _READ.pop((run_id, step), {})
    inputs: dict[str | None, dict[str, str]] | None = {}
    for key in partition_keys if partition_keys is not None else [None]:
        found: dict[str, str] = {}
        for identifier, (input_def, records) in read.items():
            wanted = reads.get(identifier.rsplit(".", 1)[-1], [ALL_COLUMNS])
            for input_partition in input_keys(partitions_def, input_def, key, records):
                record = records.get(input_partition)
                view = record.view(wanted) if record is not None else None
                if view is None:  # an input this code cannot version: no lineage at all
                    inputs = None
                    break
                found[input_key(identifier, input_partition)] = view
            if inputs is None:
                break
        if inputs is None:
            break
        inputs[key] = found
    return Lineage(dict(columns), {k: list(v) for k, v in reads.items()}, inputs)


class IcebergIOManager(ConfigurableIOManager):
    """Arrow in, Arrow out; partition windows become Iceberg `day` filters. Marts do not write
    through it: each publishes itself (write-audit-publish, serving; `marts/common.py`)."""

    warehouse: ResourceDependency[IcebergWarehouse]

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """Drop the run's kept outputs when it ends: a process that runs the next chunk of a
        backfill must not hold this one's tables while it reads its own."""
        for key in [k for k in _RUN_CACHE if k[0] == context.run_id]:
            del _RUN_CACHE[key]

    @keeps_interrupts
    def handle_output(self, context: OutputContext, obj: pa.Table) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        identifier = table_identifier(context.asset_key)
        properties = {"dagster.run_id": context.run_id}
        column, start, end = None, None, None
        if window := day_window(context):
            column = context.definition_metadata[PARTITION_COLUMN]
            start, end = window.start, window.end
            properties["dagster.partitions"] = str(window)
        records = self._build_records(context, obj, column)
        if column:
            result = self.warehouse.overwrite_days(
                identifier, obj, column, start, end, properties, records=records
            )
        else:
            result = self.warehouse.replace_all(identifier, obj, properties, records=records)
        metadata = write_metadata(result)
        _remember(context.run_id, identifier, start, end, obj, records)
        metadata["write_seconds"] = round(time.perf_counter() - wall, 3)
        metadata["write_cpu_seconds"] = round(time.process_time() - cpu, 3)
        context.add_output_metadata(metadata)

    @staticmethod
    def _build_records(context: OutputContext, obj: pa.Table, column: str | None) -> dict[str, str]:
        """The build records this write of `obj` commits with its data (`versions.py`): the
        asset's code version, each partition's rows (by its day `column`) and, for a raw table,
        the landing file versions each partition read."""
        output = context.output_metadata
        landing = output.get(LANDING_METADATA)
        blocked = output.get(BLOCKING_FAILED_METADATA)
        transform = output.get("transform_seconds")
        parts = context.definition_metadata.get(CODE_PARTS_METADATA)
        keys = context.asset_partition_keys if context.has_asset_partitions else None
        partitions_def = context.asset_partitions_def if keys is not None else None
        reads, columns = output.get(READS_METADATA), output.get(COLUMNS_METADATA)
        lineage = None
        if reads is not None and columns is not None:
            lineage = read_lineage(
                context.run_id, context.step_key, partitions_def, keys, reads.data, columns.data
            )
        return build_properties(
            keys,
            str(context.definition_metadata.get(CODE_VERSION_METADATA, "")),
            parts.data if parts is not None else None,
            context.run_id,
            rows_per_partition(partitions_def, keys, obj, column) or obj.num_rows,
            float(transform.value) if transform is not None else 0.0,
            landing.value if landing is not None else None,
            blocked.value if blocked is not None else (),
            lineage=lineage,
        )

    @keeps_interrupts
    def load_input(self, context: InputContext) -> pa.Table:
        """The upstream rows for this step's window: from this run's own just-published output
        when it wrote exactly that window (no scan), else an Iceberg scan pruned to it."""
        identifier = table_identifier(context.asset_key)
        start = end = column = None
        if window := day_window(context):
            column = context.upstream_output.definition_metadata[PARTITION_COLUMN]
            start, end = window.start, window.end
        run_id = context.step_context.run_id
        data, records = read_in_run(run_id, self.warehouse, identifier, column, start, end)
        partitions_def = context.asset_partitions_def if context.has_asset_partitions else None
        step = context.step_context.step.key
        note_read(run_id, step, identifier, partitions_def, records, start, end)
        return data
