"""Shared glue for SQL assets: run the asset's `.sql` over its inputs for the run's window."""

from __future__ import annotations

import contextlib
import datetime as dt
import resource
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
from dagster import AssetExecutionContext, PartitionsDefinition, asset
from dagster_duckdb import DuckDBResource

from marts_project.automation.conditions import propagate_updates
from marts_project.partitions import (
    backfill_policy,
    daily_partitions,
    day_window,
    partitioning_of,
)
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
    **params: Any,
) -> pa.Table:
    """Run `sql_file` in DuckDB over `tables` with the window params plus `params`."""
    with measured(context, rows_in=sum(t.num_rows for t in tables.values())) as done:
        result = run_sql(duckdb, sql_file, tables, {**window_params(context), **params})
        done(result.num_rows)
    return result


@contextlib.contextmanager
def measured(context: AssetExecutionContext, rows_in: int | None):
    """Adds rows in/out, wall and CPU seconds of the wrapped work to the materialization.

    The IO manager adds what the write cost (bytes, files, its own seconds, snapshot id), so
    the UI plots cost and volume per partition over time.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    rows_out: list[int] = []
    yield rows_out.append
    metadata = {
        "rows_out": rows_out[0] if rows_out else 0,
        "transform_seconds": round(time.perf_counter() - wall, 3),
        "transform_cpu_seconds": round(time.process_time() - cpu, 3),
        # the process's high-water mark so far: the step where it jumps set a run's peak
        "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if rows_in is not None:  # raw assets report the landing rows they read themselves
        metadata["rows_in"] = rows_in
    output = context.assets_def.get_output_name_for_asset_key(context.asset_key)
    context.add_output_metadata(metadata, output_name=output)  # not a check's output


def iceberg_table(
    layer: str,
    partition_column: str | None,
    partitions_def: PartitionsDefinition | None = daily_partitions,
    group: str | None = None,
    **kwargs: Any,
):
    """`@asset` for an Iceberg table in namespace `layer`, time-partitioned when
    `partitions_def` is given (on `partition_column`, Iceberg `day` transform)."""
    metadata = dict(kwargs.pop("metadata", {}))
    partitioning = partitioning_of(partitions_def)
    kwargs["tags"] = {**kwargs.get("tags", {}), "partitioning": partitioning}
    kwargs.setdefault("automation_condition", propagate_updates(partitioning))
    if partitions_def is not None:
        metadata["partition_expr"] = partition_column
        kwargs.update(partitions_def=partitions_def, backfill_policy=backfill_policy(partitioning))
    return asset(
        key_prefix=layer,
        group_name=group or layer,
        io_manager_key="iceberg_io",
        metadata=metadata,
        kinds={"iceberg", "duckdb"},
        **kwargs,
    )


def daily_table(layer: str, partition_column: str, **kwargs: Any):
    """`@asset` for a day-partitioned Iceberg table in namespace `layer`."""
    return iceberg_table(layer, partition_column, daily_partitions, **kwargs)
