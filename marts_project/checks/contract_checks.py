"""Asset checks generated from each mart's contract: the checks it lists, with the severity and
blocking it gives them, and its cross-mart reconciliations."""

import datetime as dt

import pyarrow as pa
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)
from dagster_duckdb import DuckDBResource

from marts_project.checks.audits import (
    Audit,
    audit_recency,
    audit_schema,
    data_audits,
)
from marts_project.checks.windows import run_window
from marts_project.contracts import CheckPolicy, Reconciliation
from marts_project.freshness import WINDOW_DAYS, partition_freshness
from marts_project.lineage import asset_key_for_table, sql_inputs
from marts_project.marts.common import Mart
from marts_project.partitions import periods_in
from marts_project.resources.iceberg import IcebergWarehouse
from marts_project.resources.iceberg_io import table_identifier
from marts_project.resources.landing import LandingZone
from marts_project.resources.serving import ServingDatabase
from marts_project.resources.sql import run_sql

DESCRIPTIONS = {
    "matches_contract": "Columns, types and nullability match the contract file.",
    "unique_key": "The unique key is unique and never null in the days a run wrote.",
    "row_count_floor": "Every partition a run wrote holds at least the contract's row floor.",
    "accepted_values": "Columns with accepted values hold nothing else.",
    "value_ranges": "Columns with a min / max stay within it.",
    "recency": "The newest partition is within the freshness SLA.",
    "partition_freshness": f"Each of the last {WINDOW_DAYS} days was refreshed after its landing "
    "data last changed, or is still within the SLA of that change.",
}


def _result(audit: Audit, policy: CheckPolicy) -> AssetCheckResult:
    return AssetCheckResult(
        passed=audit.passed,
        severity=AssetCheckSeverity.ERROR
        if policy.severity == "error"
        else AssetCheckSeverity.WARN,
        description=None if audit.passed else audit.message,
        metadata={**audit.metadata, "result": MetadataValue.text(audit.message)},
    )


def _rows(
    mart: Mart, warehouse: IcebergWarehouse, serving: ServingDatabase, start, end
) -> pa.Table:
    identifier = table_identifier(mart.asset.key)
    if mart.contract.kind == "view":
        return serving.read(identifier)
    if mart.asset.partitions_def is None:
        return warehouse.read(identifier)
    return warehouse.read(identifier, mart.contract.partition_column, start, end)


def build_contract_checks(mart: Mart) -> list[AssetChecksDefinition]:
    """One asset check per check the contract lists, plus its reconciliations."""
    contract = mart.contract
    checks = [_build_check(mart, name, policy) for name, policy in contract.checks]
    checks += [_build_reconciliation(mart, rec) for rec in contract.reconciliations]
    return checks


def _build_check(mart: Mart, name: str, policy: CheckPolicy) -> AssetChecksDefinition:
    contract, identifier = mart.contract, table_identifier(mart.asset.key)

    @asset_check(
        asset=mart.asset.key,
        name=name,
        blocking=policy.blocking,
        description=DESCRIPTIONS[name],
        metadata={"contract/severity": policy.severity},
    )
    def _check(
        context: AssetCheckExecutionContext,
        warehouse: IcebergWarehouse,
        serving: ServingDatabase,
        landing: LandingZone,
    ) -> AssetCheckResult:
        now = dt.datetime.now(dt.UTC)
        if name == "matches_contract":
            if contract.kind == "view":
                return _result(
                    audit_schema(contract, serving.read(identifier).schema, False), policy
                )
            schema = warehouse.load_table(identifier).schema().as_arrow()
            return _result(audit_schema(contract, schema), policy)
        if name == "recency":
            latest = warehouse.latest_day(identifier)
            return _result(audit_recency(contract, latest, now), policy)
        if name == "partition_freshness":
            return _freshness_result(mart, serving, landing, now, policy)
        start, end = run_window(context)
        table = _rows(mart, warehouse, serving, start, end)
        periods = periods_in(mart.asset.partitions_def, start, end)
        (audit,) = data_audits(contract, table, periods, only=name)
        return _result(audit, policy)

    return _check


def _freshness_result(mart, serving, landing, now, policy) -> AssetCheckResult:
    rows = partition_freshness(mart, serving, landing, now)
    overdue = [r.day.isoformat() for r in rows if r.status == "overdue"]
    waiting = [r.day.isoformat() for r in rows if r.status in ("stale", "not_built")]
    table = "| day | status | landing changed | refreshed |\n|---|---|---|---|\n" + "\n".join(
        f"| {r.day} | {r.status} | {r.landing_changed_at or '-'} | {r.refreshed_at or '-'} |"
        for r in rows
    )
    audit = Audit(
        "partition_freshness",
        not overdue,
        f"overdue: {', '.join(overdue)}" if overdue else "no partition is overdue",
        {
            "fresh_days": sum(r.status == "fresh" for r in rows),
            "waiting_days": len(waiting),
            "overdue_days": len(overdue),
            "partitions": MetadataValue.md(table),
        },
    )
    return _result(audit, policy)


def _build_reconciliation(mart: Mart, rec: Reconciliation) -> AssetChecksDefinition:
    """Runs `rec.sql` over the marts it names (each read for the run's days); passes when the
    query returns no rows, i.e. nothing disagrees."""
    from marts_project.marts import contract_of

    tables = sql_inputs(rec.sql)

    @asset_check(
        asset=mart.asset.key,
        name=rec.name,
        blocking=rec.policy.blocking,
        description=rec.description,
        additional_deps=[asset_key_for_table(t) for t in tables if t != mart.contract.name],
        metadata={"contract/severity": rec.policy.severity},
    )
    def _reconcile(
        context: AssetCheckExecutionContext, warehouse: IcebergWarehouse, duckdb: DuckDBResource
    ) -> AssetCheckResult:
        start, end = run_window(context)
        inputs = {
            t: warehouse.read(
                table_identifier(asset_key_for_table(t)),
                contract_of(t).partition_column,
                start,
                end,
            )
            for t in tables
        }
        mismatches = run_sql(duckdb, rec.sql, inputs, {"start": start, "end": end})
        sample = mismatches.slice(0, 5).to_pylist()
        audit = Audit(
            rec.name,
            mismatches.num_rows == 0,
            f"{mismatches.num_rows} disagreeing rows, e.g. {sample}"
            if mismatches.num_rows
            else "the marts agree",
            {"disagreeing_rows": mismatches.num_rows},
        )
        return _result(audit, rec.policy)

    return _reconcile
