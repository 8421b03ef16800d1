"""Checks generated from a mart's contract: its key holds, its table matches the contract."""

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    asset_check,
)

from marts_project.contracts import Contract, _compatible, arrow_type, null_count
from marts_project.partitions import daily_partitions
from marts_project.resources.iceberg import IcebergWarehouse
from marts_project.resources.iceberg_io import table_identifier


def key_violations(table: pa.Table, key: list[str]) -> tuple[int, int]:
    """(rows with a null key column, rows beyond the first per duplicated key)."""
    nulls = null_count(table, key)
    if table.num_rows == 0:
        return nulls, 0
    counts = table.group_by(key).aggregate([([], "count_all")])
    duplicates = pc.sum(pc.subtract(counts.column("count_all"), 1)).as_py() or 0
    return nulls, int(duplicates)


def schema_differences(contract: Contract, schema: pa.Schema) -> list[str]:
    """How a table's schema departs from the contract (empty when it conforms)."""
    problems = []
    for col in contract.columns:
        if col.name not in schema.names:
            problems.append(f"{col.name}: missing")
            continue
        field = schema.field(col.name)
        if not _compatible(field.type, arrow_type(col.type)):
            problems.append(f"{col.name}: {field.type}, contract says {col.type}")
        if field.nullable and not col.nullable:
            problems.append(f"{col.name}: nullable in table, required by contract")
    known = {c.name for c in contract.columns}
    problems += [f"{name}: not in contract" for name in schema.names if name not in known]
    return problems


def build_contract_checks(contract: Contract, asset_key: AssetKey) -> list[AssetChecksDefinition]:
    """Blocking checks that guard consumers of one day-partitioned mart."""
    identifier = table_identifier(asset_key)
    key = list(contract.unique_key)

    @asset_check(
        asset=asset_key,
        name="unique_key",
        partitions_def=daily_partitions,
        blocking=True,
        description=f"({', '.join(key)}) is unique and never null in each partition.",
    )
    def unique_key(
        context: AssetCheckExecutionContext, warehouse: IcebergWarehouse
    ) -> AssetCheckResult:
        window = context.partition_time_window
        table = warehouse.read(
            identifier, contract.partition_column, window.start.date(), window.end.date()
        )
        nulls, duplicates = key_violations(table, key)
        return AssetCheckResult(
            passed=nulls == 0 and duplicates == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={"rows": table.num_rows, "null_keys": nulls, "duplicate_keys": duplicates},
        )

    @asset_check(
        asset=asset_key,
        name="matches_contract",
        blocking=True,
        description="The Iceberg table's columns, types and nullability match the contract.",
    )
    def matches_contract(warehouse: IcebergWarehouse) -> AssetCheckResult:
        schema = warehouse.load_table(identifier).schema().as_arrow()
        problems = schema_differences(contract, schema)
        return AssetCheckResult(
            passed=not problems,
            severity=AssetCheckSeverity.ERROR,
            metadata={"differences": "; ".join(problems) or "none"},
        )

    return [unique_key, matches_contract]
