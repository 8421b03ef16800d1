"""Checks generated from a mart's contract: its key holds, its table matches the contract."""

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    asset_check,
)

from marts_project.checks.windows import run_window
from marts_project.contracts import Contract, _compatible, arrow_type, null_count
from marts_project.marts.common import Mart
from marts_project.resources.iceberg import IcebergWarehouse
from marts_project.resources.iceberg_io import table_identifier
from marts_project.resources.serving import ServingDatabase


def key_violations(table: pa.Table, key: list[str]) -> tuple[int, int]:
    """(rows with a null key column, rows beyond the first per duplicated key)."""
    nulls = null_count(table, key)
    if table.num_rows == 0:
        return nulls, 0
    counts = table.group_by(key).aggregate([([], "count_all")])
    duplicates = pc.sum(pc.subtract(counts.column("count_all"), 1)).as_py() or 0
    return nulls, int(duplicates)


def schema_differences(
    contract: Contract, schema: pa.Schema, nullability: bool = True
) -> list[str]:
    """How a table's schema departs from the contract (empty when it conforms)."""
    problems = []
    for col in contract.columns:
        if col.name not in schema.names:
            problems.append(f"{col.name}: missing")
            continue
        field = schema.field(col.name)
        if not _compatible(field.type, arrow_type(col.type)):
            problems.append(f"{col.name}: {field.type}, contract says {col.type}")
        if nullability and field.nullable and not col.nullable:
            problems.append(f"{col.name}: nullable in table, required by contract")
    known = set(contract.column_names)
    problems += [f"{name}: not in contract" for name in schema.names if name not in known]
    return problems


def _mart_rows(
    mart: Mart,
    context: AssetCheckExecutionContext,
    warehouse: IcebergWarehouse,
    serving: ServingDatabase,
) -> pa.Table:
    """The rows a check judges: the run's partitions of a table, or all of a dim or view."""
    identifier = table_identifier(mart.asset.key)
    if mart.contract.kind == "view":
        return serving.read(identifier)
    if mart.asset.partitions_def is None:
        return warehouse.read(identifier)
    start, end = run_window(context)
    return warehouse.read(identifier, mart.contract.partition_column, start, end)


def build_contract_checks(mart: Mart) -> list[AssetChecksDefinition]:
    """Blocking checks that guard the consumers of one mart."""
    contract, key = mart.contract, list(mart.contract.unique_key)
    identifier = table_identifier(mart.asset.key)

    @asset_check(
        asset=mart.asset.key,
        name="unique_key",
        blocking=True,
        description=f"({', '.join(key)}) is unique and never null"
        + (" in the partitions a run wrote." if mart.asset.partitions_def else "."),
    )
    def unique_key(
        context: AssetCheckExecutionContext, warehouse: IcebergWarehouse, serving: ServingDatabase
    ) -> AssetCheckResult:
        table = _mart_rows(mart, context, warehouse, serving)
        nulls, duplicates = key_violations(table, key)
        return AssetCheckResult(
            passed=nulls == 0 and duplicates == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={"rows": table.num_rows, "null_keys": nulls, "duplicate_keys": duplicates},
        )

    @asset_check(
        asset=mart.asset.key,
        name="matches_contract",
        blocking=True,
        description="Columns, types and nullability match the contract file.",
    )
    def matches_contract(warehouse: IcebergWarehouse, serving: ServingDatabase) -> AssetCheckResult:
        if contract.kind == "view":
            schema, nullability = serving.read(identifier).schema, False
        else:
            schema, nullability = warehouse.load_table(identifier).schema().as_arrow(), True
        problems = schema_differences(contract, schema, nullability)
        return AssetCheckResult(
            passed=not problems,
            severity=AssetCheckSeverity.ERROR,
            metadata={"differences": "; ".join(problems) or "none"},
        )

    return [unique_key, matches_contract]
