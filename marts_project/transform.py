"""Shared glue for SQL assets: run the asset's `.sql` over its inputs for the run's window."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
from dagster import AssetExecutionContext, PartitionsDefinition, asset
from dagster_duckdb import DuckDBResource

from marts_project.automation.conditions import propagate_updates
from marts_project.partitions import daily_partitions, single_run_backfill
from marts_project.resources.sql import run_sql


def window_params(context: AssetExecutionContext) -> dict[str, Any]:
    """Bound SQL parameters every transform may use: the run's day window and refresh time."""
    params: dict[str, Any] = {"refreshed_at": dt.datetime.now(dt.UTC)}
    if context.has_partition_key_range or context.has_partition_key:
        window = context.partition_time_window
        params["start"], params["end"] = window.start.date(), window.end.date()
    return params


def transform(
    context: AssetExecutionContext,
    duckdb: DuckDBResource,
    sql_file: Path,
    tables: dict[str, pa.Table],
    **params: Any,
) -> pa.Table:
    """Run `sql_file` in DuckDB over `tables` with the window params plus `params`."""
    result = run_sql(duckdb, sql_file, tables, {**window_params(context), **params})
    context.log.debug(f"{sql_file.name}: {result.num_rows} rows")
    return result


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
    kwargs.setdefault("automation_condition", propagate_updates())
    if partitions_def is not None:
        metadata["partition_expr"] = partition_column
        kwargs.update(partitions_def=partitions_def, backfill_policy=single_run_backfill)
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
