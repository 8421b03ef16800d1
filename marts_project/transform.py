"""The one way to build a table: an Iceberg asset whose inputs are the tables its `.sql` reads,
run in DuckDB over those inputs for the run's window. Staging and intermediate are built here
from `tables.yml` + SQL; marts (`marts/common.py`) add their contract on the same decorator."""

import contextlib
import datetime as dt
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    MetadataValue,
    PartitionMapping,
    PartitionsDefinition,
    asset,
)
from dagster_duckdb import DuckDBResource
from pydantic import BaseModel, ConfigDict, ValidationError

from marts_project.core.lineage import asset_key_for_table, column_reads, normalized_sql, sql_inputs
from marts_project.core.partitions import (
    backfill_policy,
    daily_partitions,
    day_window,
    partitioning_of,
    rows_per_partition,
)
from marts_project.core.versions import (
    CODE_PARTS_METADATA,
    CODE_VERSION_METADATA,
    COLUMN_PARTS_METADATA,
    COLUMNS_METADATA,
    READS_METADATA,
    code_parts,
    code_version,
    column_versions,
)
from marts_project.core.yaml_files import read_yaml
from marts_project.resources.duck import keeps_interrupts
from marts_project.resources.pii import PiiMasking
from marts_project.resources.sql import run_sql


def window_params(context: AssetExecutionContext) -> dict[str, Any]:
    """Bound SQL parameters every transform may use: the run's day window and refresh time."""
    params: dict[str, Any] = {"refreshed_at": dt.datetime.now(dt.UTC)}
    if window := day_window(context):
        params["start"], params["end"] = window.start, window.end
    return params


def transform(
    context: AssetExecutionContext,
    duckdb: DuckDBResource,
    sql_file: Path,
    tables: dict[str, pa.Table],
    views: dict[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
    **params: Any,
) -> pa.Table:
    """Run `sql_file` in DuckDB over `tables` (and `views` over them) with the window params
    plus `params`; `metadata` goes on the materialization with what it measured."""
    rows_in = sum(t.num_rows for t in tables.values())
    with measured(context, rows_in=rows_in, metadata=metadata) as done:
        result = run_sql(duckdb, sql_file, tables, {**window_params(context), **params}, views)
        done(result)
    return result


def record_lineage(
    context: AssetExecutionContext, sql: str, inputs: dict[str, pa.Table]
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """What this step's SQL reads of each input and each output column's code version (its
    SQL pruned to the column, with the asset's `column_parts`): what its write records per
    partition (`versions.Lineage`; `lineage_metadata` carries it to the IO manager)."""
    found = column_reads(sql, {name: table.schema.names for name, table in inputs.items()})
    parts = context.assets_def.metadata_by_key[context.asset_key][COLUMN_PARTS_METADATA].data
    columns = column_versions(found["code"], parts["shared"], parts["columns"])
    return found["reads"], columns


def lineage_metadata(reads: dict[str, list[str]], columns: dict[str, str]) -> dict[str, Any]:
    """The output metadata the IO manager turns into a `versions.Lineage` per partition."""
    return {READS_METADATA: MetadataValue.json(reads), COLUMNS_METADATA: columns}


@contextlib.contextmanager
def measured(
    context: AssetExecutionContext, rows_in: int | None, metadata: dict[str, Any] | None = None
):
    """Adds rows in/out, wall and CPU seconds of the wrapped work to the materialization; the
    block hands its output table to the function it is given.

    The IO manager adds what the write cost (bytes, files, its own seconds, snapshot id), so
    the UI plots cost and volume per partition over time: a step over several partitions gives
    each partition's materialization its own rows (`rows_out`, `dagster/row_count`).
    """
    wall, cpu = time.perf_counter(), time.process_time()
    out: list[pa.Table] = []
    yield out.append
    metadata = {
        **(metadata or {}),
        "rows_out": out[0].num_rows if out else 0,
        "transform_seconds": round(time.perf_counter() - wall, 3),
        "transform_cpu_seconds": round(time.process_time() - cpu, 3),
        # the process's high-water mark so far: the step where it jumps set a run's peak
        "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if rows_in is not None:  # raw assets report the landing rows they read themselves
        metadata["rows_in"] = rows_in
    output = context.assets_def.get_output_name_for_asset_key(context.asset_key)
    context.add_output_metadata(metadata, output_name=output)  # not a check's output
    if out and len(keys := partition_keys(context) or []) > 1:
        column = context.assets_def.metadata_by_key[context.asset_key].get("partition_expr")
        by_key = rows_per_partition(context.assets_def.partitions_def, keys, out[0], column)
        for key, rows in (by_key or {}).items():
            context.add_asset_metadata(
                {"rows_out": rows, "dagster/row_count": rows}, partition_key=key
            )


def partition_keys(context: AssetExecutionContext) -> list[str] | None:
    """The partitions the step builds, None when the asset is unpartitioned."""
    return list(context.partition_keys) if context.assets_def.partitions_def else None


def iceberg_table(
    layer: str,
    partition_column: str | None,
    partitions_def: PartitionsDefinition | None = daily_partitions,
    group: str | None = None,
    *,
    code: dict[str, str],
    column_parts: dict[str, dict[str, str]] | None = None,
    sql: str | None = None,
    **kwargs: Any,
):
    """`@asset` for an Iceberg table in namespace `layer`, time-partitioned when
    `partitions_def` is given (on `partition_column`, Iceberg `day` transform), with the code
    version of what defines it (`code`: its `versions.code_parts`), which every write records
    per partition. `column_parts` (`shared`, `columns`) define its columns apart with its
    `sql`: by default every part but its SQL, shared by all columns."""
    version = code_version(code)
    if column_parts is None:
        shared = {name: d for name, d in code.items() if not name.endswith(".sql")}
        column_parts = {"shared": shared, "columns": {}}
    column_parts = {**column_parts, "sql": sql}
    metadata = {
        **kwargs.pop("metadata", {}),
        CODE_VERSION_METADATA: version,
        CODE_PARTS_METADATA: MetadataValue.json(code),
        COLUMN_PARTS_METADATA: MetadataValue.json(column_parts),
    }
    partitioning = partitioning_of(partitions_def)
    kwargs["tags"] = {**kwargs.get("tags", {}), "partitioning": partitioning}
    if partitions_def is not None:
        metadata["partition_expr"] = partition_column
        kwargs.update(partitions_def=partitions_def, backfill_policy=backfill_policy(partitioning))
    build = asset(
        key_prefix=layer,
        group_name=group or layer,
        code_version=version,
        io_manager_key="iceberg_io",
        metadata=metadata,
        kinds={"iceberg", "duckdb"},
        **kwargs,
    )
    return lambda step: build(keeps_interrupts(step))


def daily_table(layer: str, partition_column: str, **kwargs: Any):
    """`@asset` for a day-partitioned Iceberg table in namespace `layer`."""
    return iceberg_table(layer, partition_column, daily_partitions, **kwargs)


def sql_ins(sql: str, partition_mapping: PartitionMapping | None = None) -> dict[str, AssetIn]:
    """The asset inputs of a transform: every table its SQL reads, never listed by hand."""
    return {
        table: AssetIn(key=asset_key_for_table(table), partition_mapping=partition_mapping)
        for table in sql_inputs(sql)
    }


class LayerTable(BaseModel):
    """A table of `tables.yml`: what its day column is and what it holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    partition_column: str
    description: str


# What a step's SQL reads instead of its input tables as they are: the tables to register and
# views over them under the inputs' names (e.g. staging sees each raw input deduplicated).
Prepare = Callable[[dict[str, pa.Table]], tuple[dict[str, pa.Table], dict[str, str]]]


def sql_layer(layer: str, folder: Path, prepare: Prepare | None = None) -> list[AssetsDefinition]:
    """Every table of a layer: `<folder>/tables.yml` lists them, `<folder>/<name>.sql` computes
    each from the tables it reads. A listed table without SQL, or SQL no table lists, is an
    error at definition load."""
    listing = folder / "tables.yml"
    tables = read_yaml(listing)
    sql_files = {f.stem for f in folder.glob("*.sql")}
    if sorted(tables) != sorted(sql_files):
        raise ValueError(
            f"{listing}: tables without SQL {sorted(set(tables) - sql_files) or 'none'}, "
            f"SQL without a table {sorted(sql_files - set(tables)) or 'none'}"
        )
    try:
        specs = {name: LayerTable.model_validate(body) for name, body in tables.items()}
    except ValidationError as exc:
        raise ValueError(f"{listing}: {exc}") from None
    return [sql_table(layer, folder / f"{name}.sql", spec, prepare) for name, spec in specs.items()]


def sql_table(
    layer: str, sql_file: Path, spec: LayerTable, prepare: Prepare | None = None
) -> AssetsDefinition:
    """A day-partitioned table computed by `sql_file`; its inputs are the tables the SQL reads."""

    sql = sql_file.read_text()

    @daily_table(
        layer,
        spec.partition_column,
        name=sql_file.stem,
        description=spec.description,
        ins=sql_ins(sql),
        sql=sql,
        code=code_parts(
            "sql",
            **{
                f"{layer}/{sql_file.name}": normalized_sql(sql),
                f"{layer}/tables.yml: {sql_file.stem}": spec.model_dump(mode="json"),
            },
        ),
    )
    def _table(
        context: AssetExecutionContext,
        duckdb: DuckDBResource,
        pii: PiiMasking,
        **tables: pa.Table,
    ) -> pa.Table:
        read = lineage_metadata(*record_lineage(context, sql, tables))
        tables, views = prepare(tables) if prepare else (tables, {})
        return transform(context, duckdb, sql_file, tables, views, read, pii_key=pii.key)

    return _table
