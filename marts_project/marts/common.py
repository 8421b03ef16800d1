"""Builds a mart asset from its two files: `<name>.sql` (what it computes) and `<name>.yml` (its
contract). Inputs come from the tables the SQL reads, docs, owner, column schema and partitioning
from the contract, and the output is checked against the contract before anything is written."""

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)
from dagster_duckdb import DuckDBResource

from marts_project.checks.audits import Audit, blocking_failures
from marts_project.checks.registry import CHECKS, write_audits
from marts_project.checks.specs import check_result, write_audit_specs
from marts_project.core.contracts import Contract, load_contract
from marts_project.core.lineage import (
    asset_key_for_table,
    column_lineage,
    normalized_sql,
    schema_qualified,
    sql_inputs,
)
from marts_project.core.partitions import (
    daily_partitions,
    day_window,
    days_of_period,
    periods_in,
    rows_per_partition,
)
from marts_project.core.versions import (
    BUILT,
    CODE_PARTS_METADATA,
    ON_CHANGE_METADATA,
    build_properties,
    code_parts,
    code_version,
)
from marts_project.governance.access import serving_databases
from marts_project.resources.duck import keeps_interrupts
from marts_project.resources.iceberg import IcebergWarehouse
from marts_project.resources.iceberg_io import read_lineage, write_metadata
from marts_project.resources.serving import ServingDatabase
from marts_project.transform import (
    iceberg_table,
    lineage_metadata,
    partition_keys,
    record_lineage,
    sql_ins,
    transform,
)


@dataclass(frozen=True)
class Mart:
    """A mart's asset with the contract it was built from."""

    asset: AssetsDefinition
    contract: Contract
    sql_file: Path


def _definition(contract: Contract, sql: str) -> dict:
    sla = timedelta(hours=contract.freshness_sla_hours)
    return {
        "name": contract.name,
        # Dagster's freshness is per asset (its latest materialization of any partition); the
        # per-partition view is the partition_freshness check
        # (marts_project/observability/freshness.py).
        "freshness_policy": FreshnessPolicy.time_window(fail_window=sla, warn_window=sla * 0.75),
        "description": contract.description,
        "owners": [contract.owner],
        "tags": {"domain": contract.domain, "layer": "mart", "partitioning": contract.partitioning},
        "metadata": {
            "dagster/column_schema": contract.column_schema(),
            "contract/grain": contract.grain,
            "contract/unique_key": ", ".join(contract.unique_key),
            "contract/freshness_sla_hours": contract.freshness_sla_hours,
            "contract/inputs": ", ".join(sql_inputs(sql)),
            "contract/serving_databases": ", ".join(serving_databases(contract)),
            "contract/regulated": contract.regulated,
            ON_CHANGE_METADATA: contract.on_change,
        },
    }


def _code(contract: Contract, sql_file: Path, sql: str, layer: str) -> dict[str, str]:
    """What defines a mart: its normalized SQL, its contract, its layer's code."""
    folder = f"marts/{contract.domain}"
    return code_parts(
        layer,
        **{
            f"{folder}/{sql_file.name}": normalized_sql(sql),
            # what a change rebuilds is no part of what the mart computes
            f"{folder}/{sql_file.stem}.yml": contract.model_dump(
                mode="json", exclude={"on_change"}
            ),
        },
    )


def _column_parts(contract: Contract, layer: str) -> dict[str, dict[str, str]]:
    """What defines a mart's columns: its contract but the columns and its layer's code for
    all, each column's own entry for it (`versions.column_versions`)."""
    folder = f"marts/{contract.domain}"
    shared = contract.model_dump(mode="json", exclude={"on_change", "columns"})
    return {
        "shared": code_parts(layer, **{f"{folder}/{contract.name}.yml": shared}),
        "columns": {
            c.name: code_parts(layer, column=c.model_dump(mode="json"))["column"]
            for c in contract.columns
        },
    }


def build_mart(sql_dir: Path, name: str) -> Mart:
    """The asset of mart `name` (an Iceberg table, or a view when its contract says so)."""
    contract = load_contract(sql_dir / f"{name}.yml", known_checks=frozenset(CHECKS))
    sql_file = sql_dir / f"{name}.sql"
    if contract.kind == "view":
        return Mart(_build_view(contract, sql_file), contract, sql_file)
    sql = sql_file.read_text()
    partitions_def = contract.partitions_def
    periodic = partitions_def not in (None, daily_partitions)
    ins = sql_ins(sql, days_of_period if periodic else None)
    # Marts a reconciliation compares against are built first, so the check sees their update.
    reconciled = {
        table
        for r in contract.reconciliations
        for table in sql_inputs(r.sql)
        if table != contract.name and table not in ins
    }
    deps = [
        AssetDep(asset_key_for_table(table), partition_mapping=days_of_period if periodic else None)
        for table in sorted(reconciled)
    ]
    key = AssetKey([contract.domain, contract.name])

    @iceberg_table(
        contract.domain,
        contract.partition_column,
        partitions_def,
        code=_code(contract, sql_file, sql, "mart"),
        column_parts=_column_parts(contract, "mart"),
        sql=sql,
        ins=ins,
        deps=deps,
        check_specs=write_audit_specs(contract, key),
        **_definition(contract, sql),
    )
    def _mart(
        context: AssetExecutionContext,
        duckdb: DuckDBResource,
        warehouse: IcebergWarehouse,
        serving: ServingDatabase,
        **tables: pa.Table,
    ) -> MaterializeResult:
        began, refreshed_at = time.perf_counter(), datetime.now(UTC)
        reads, columns = record_lineage(context, sql, tables)
        result = contract.conform(
            transform(
                context,
                duckdb,
                sql_file,
                tables,
                metadata=lineage_metadata(reads, columns),
                refreshed_at=refreshed_at,
            )
        )
        lineage = column_lineage(
            sql, {t: data.schema for t, data in tables.items()}, contract.column_names
        )
        seconds = time.perf_counter() - began
        published = publish(
            context, contract, result, warehouse, serving, seconds, refreshed_at, (reads, columns)
        )
        published.metadata["dagster/column_lineage"] = lineage
        return published

    return Mart(_mart, contract, sql_file)


def publish(
    context: AssetExecutionContext,
    contract: Contract,
    data: pa.Table,
    warehouse: IcebergWarehouse,
    serving: ServingDatabase,
    transform_seconds: float = 0.0,
    refreshed_at: datetime | None = None,
    read: tuple[dict[str, list[str]], dict[str, str]] | None = None,
) -> MaterializeResult:
    """Write-audit-publish the mart's rows for the run's window with their build records,
    mirror them into its serving databases (its own, then its grantees'), and report the one
    audit pass as the materialization's check results."""
    wall, cpu = time.perf_counter(), time.process_time()
    identifier = f"{contract.domain}.{contract.name}"
    properties = {"dagster.run_id": context.run_id}
    column = start = end = periods = None
    if window := day_window(context):
        column, start, end = contract.partition_column, window.start, window.end
        periods = periods_in(context.assets_def.partitions_def, start, end)
        properties["dagster.partitions"] = str(window)
    audits: list[Audit] = []
    audit_seconds = 0.0

    def audit(staged: pa.Table) -> list[str]:
        nonlocal audit_seconds
        began = time.perf_counter()
        audits[:] = write_audits(contract, staged, periods)
        audit_seconds += time.perf_counter() - began  # a redone write audits again
        return blocking_failures(contract, audits)

    keys = partition_keys(context)
    lineage = None
    if read is not None:
        step = context.get_step_execution_context().step.key
        partitions_def = context.assets_def.partitions_def
        lineage = read_lineage(context.run_id, step, partitions_def, keys, *read)
    records = build_properties(
        keys,
        context.assets_def.code_versions_by_key[context.asset_key] or "",
        context.assets_def.metadata_by_key[context.asset_key][CODE_PARTS_METADATA].data,
        context.run_id,
        rows_per_partition(context.assets_def.partitions_def, keys, data, column) or data.num_rows,
        transform_seconds,
        at=refreshed_at,
        lineage=lineage,
    )
    written = warehouse.write_audit_publish(
        identifier, data, column, start, end, audit, properties, records
    )
    served = time.perf_counter()
    databases = serving.publish(
        identifier, data, lambda: warehouse.read(identifier), column, start, end
    )
    done = time.perf_counter()
    return MaterializeResult(
        metadata={
            **write_metadata(written),
            "serving/table": identifier,
            "serving/databases": ", ".join(databases),
            # write_seconds is the whole publish; the audit and serving parts are inside it
            "write_seconds": round(done - wall, 3),
            "write_cpu_seconds": round(time.process_time() - cpu, 3),
            "audit_seconds": round(audit_seconds, 3),
            "serving_seconds": round(done - served, 3),
            "audits_failed": sum(not a.passed for a in audits),
        },
        check_results=[check_result(a, contract.policy(a.name)) for a in audits],
    )


def _build_view(contract: Contract, sql_file: Path) -> AssetsDefinition:
    """A `_v` mart: a view in the serving database, always as fresh as the marts it reads."""
    sql = sql_file.read_text()
    identifier = f"{contract.domain}.{contract.name}"
    code = _code(contract, sql_file, sql, "view")
    version = code_version(code)
    definition = _definition(contract, sql)
    # its build record lives in the serving database (a view has no Iceberg table)
    metadata = {**definition.pop("metadata"), CODE_PARTS_METADATA: MetadataValue.json(code)}

    @asset(
        key_prefix=contract.domain,
        group_name=contract.domain,
        deps=[asset_key_for_table(t) for t in sql_inputs(sql)],
        kinds={"duckdb", "view"},
        code_version=version,
        metadata=metadata,
        check_specs=write_audit_specs(contract, AssetKey([contract.domain, contract.name])),
        **definition,
    )
    @keeps_interrupts
    def _view(context: AssetExecutionContext, serving: ServingDatabase) -> MaterializeResult:
        """Published like a table: the new definition is audited before anyone can read it
        (a view's columns carry no nullability to judge)."""
        audits: list[Audit] = []

        def audit(rows: pa.Table) -> list[str]:
            audits[:] = write_audits(contract, rows, None, nullability=False)
            return blocking_failures(contract, audits)

        record = build_properties(None, version, code, context.run_id, 0, 0.0)[BUILT]
        rows = serving.create_view(identifier, schema_qualified(sql), audit, record)
        columns = serving.describe(identifier)
        return MaterializeResult(
            metadata={
                "serving/view": identifier,
                "serving/databases": serving.home(identifier),
                "columns": len(columns),
                "dagster/row_count": rows,
            },
            check_results=[check_result(a, contract.policy(a.name)) for a in audits],
        )

    return _view
