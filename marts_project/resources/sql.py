"""Runs a `.sql` transform in DuckDB over named Arrow tables, with bound parameters."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
from dagster_duckdb import DuckDBResource


def run_sql(
    duckdb: DuckDBResource,
    sql: str | Path,
    tables: Mapping[str, pa.Table],
    params: Mapping[str, Any] | None = None,
    views: Mapping[str, str] | None = None,
) -> pa.Table:
    """Register `tables` as DuckDB views (zero-copy), define `views` (name -> SELECT over
    them, in order) and return the query's result as Arrow: one DuckDB pipeline, with nothing
    in between materialized.

    Values are always bound (`$name` in the SQL), never formatted into it.
    """
    query = Path(sql).read_text() if isinstance(sql, Path) else sql
    with duckdb.get_connection() as conn:
        for name, table in tables.items():
            conn.register(name, table)
        for name, select in (views or {}).items():
            conn.execute(f'create temp view "{name}" as {select}')
        bound = {k: v for k, v in (params or {}).items() if f"${k}" in query}
        return conn.sql(query, params=bound or None).to_arrow_table()
