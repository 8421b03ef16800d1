"""stg_*: typed, deduplicated, conformed source tables with PII tokenized (`tables.yml` + SQL).

Each staging table reads raw tables; a raw input is first deduplicated by its source contract's
key and winner rule, so every staging SQL sees one row per key."""

from pathlib import Path

import pyarrow as pa
from dagster_duckdb import DuckDBResource

from marts_project.raw.sources import SourceSpec, source_specs
from marts_project.resources.sql import run_sql
from marts_project.transform import sql_layer

STAGING = "staging"


def dedupe_sql(spec: SourceSpec) -> str:
    """One row per key of the source contract: the winner its rule names (sources.yml)."""
    key = ", ".join(f'"{column}"' for column in spec.key)
    return (
        f"select * from raw qualify row_number() over (partition by {key} "
        f"order by {spec.dedupe_order()}) = 1"
    )


def deduplicated(duckdb: DuckDBResource, tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """Each `raw_<source>` input with only the winner of each key of its source contract."""
    specs = source_specs()
    return {
        name: run_sql(duckdb, dedupe_sql(specs[name.removeprefix("raw_")]), {"raw": table})
        if name.startswith("raw_")
        else table
        for name, table in tables.items()
    }


staging_assets = sql_layer(STAGING, Path(__file__).parent, prepare=deduplicated)
