"""Asset checks generated from each mart's contract that run on their own: the clock checks and
the cross-mart reconciliations (data checks are reported by the mart's write: `checks/specs.py`)."""

import datetime as dt
from collections.abc import Iterator

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetKey,
    MetadataValue,
    asset_check,
    multi_asset_check,
)
from dagster_duckdb import DuckDBResource

from marts_project.assets import all_assets
from marts_project.checks.audits import Audit, audit_recency
from marts_project.checks.registry import CHECKS, WRITE_AUDITS
from marts_project.checks.specs import check_result, check_spec
from marts_project.checks.windows import run_window
from marts_project.core.contracts import CheckPolicy, Reconciliation
from marts_project.core.lineage import asset_key_for_table, sql_inputs
from marts_project.marts.common import Mart
from marts_project.observability.failures import failed_in_lineage
from marts_project.observability.freshness import failures_window, partition_freshness
from marts_project.observability.slo_history import mart_slo
from marts_project.planning.planner import stale_partitions
from marts_project.resources.duck import keeps_interrupts
from marts_project.resources.iceberg import IcebergWarehouse
from marts_project.resources.iceberg_io import table_identifier
from marts_project.resources.landing import LandingSnapshot, LandingZone
from marts_project.resources.serving import ServingDatabase
from marts_project.resources.sql import run_sql


def build_contract_checks(mart: Mart) -> list[AssetChecksDefinition]:
    """The contract's checks that are not judged by the mart's own write (`WRITE_AUDITS`): those
    that need the clock (recency, partition freshness) and its reconciliations, run together in
    one step after the mart (fewer steps and events per run), and the SLO budget on its own."""
    checks = []
    if standalone := _standalone_checks(mart):
        checks.append(standalone)
    if mart.contract.slo is not None:
        checks.append(_build_slo_check(mart))
    return checks


def _standalone_checks(mart: Mart) -> AssetChecksDefinition | None:
    """One step for the mart's clock checks and reconciliations; any subset of them can run
    (e.g. the hourly freshness job runs partition_freshness alone)."""
    contract, key = mart.contract, mart.asset.key
    identifier = table_identifier(key)
    clock = {name: policy for name, policy in contract.checks if name not in WRITE_AUDITS}
    reconciliations = {r.name: r for r in contract.reconciliations}
    specs = [
        check_spec(name, key, policy, CHECKS[name].description) for name, policy in clock.items()
    ]
    specs += [
        check_spec(
            rec.name,
            key,
            rec.policy,
            rec.description,
            [asset_key_for_table(t) for t in sql_inputs(rec.sql) if t != contract.name],
        )
        for rec in reconciliations.values()
    ]
    if not specs:
        return None

    @multi_asset_check(name=f"{contract.name}_checks", specs=specs, can_subset=True)
    @keeps_interrupts
    def _checks(
        context: AssetCheckExecutionContext,
        warehouse: IcebergWarehouse,
        serving: ServingDatabase,
        landing: LandingZone,
        duckdb: DuckDBResource,
    ) -> Iterator[AssetCheckResult]:
        now = dt.datetime.now(dt.UTC)
        for check in sorted(context.selected_asset_check_keys, key=lambda k: k.name):
            if check.name == "recency":
                latest = warehouse.latest_day(identifier)
                yield check_result(audit_recency(contract, latest, now), clock[check.name], key)
            elif check.name == "partition_freshness":
                run_id = context.run.run_id
                failed = failed_in_lineage(
                    contract.name,
                    contract.partitions_def,
                    context.instance,
                    run_id,
                    within=failures_window(now),
                )
                files = landing.snapshot()  # one listing: the plan's versions and arrivals
                stale = stale_partitions(
                    all_assets(), warehouse, serving, files, of=key, run_id=run_id
                )
                built = warehouse.build_records(identifier, run_id)
                yield _freshness_result(
                    mart, serving, files, now, clock[check.name], key, failed, stale, built
                )
            else:
                rec = reconciliations[check.name]
                yield _reconcile(rec, run_window(context), warehouse, duckdb, key)

    return _checks


def _build_slo_check(mart: Mart) -> AssetChecksDefinition:
    """Warns (never blocks) when an SLI of the mart is out of its error budget; the figures and
    the incidents that spent the budget are the result's metadata."""

    @asset_check(
        asset=mart.asset.key,
        name="slo_budget",
        blocking=False,
        description="Every SLI of the contract's SLO is within its error budget over the window.",
        metadata={"contract/severity": "warn"},
    )
    @keeps_interrupts
    def _slo(
        context: AssetCheckExecutionContext, warehouse: IcebergWarehouse, landing: LandingZone
    ) -> AssetCheckResult:
        now = dt.datetime.now(dt.UTC)
        report = mart_slo(mart, context.instance, warehouse, landing, now)
        metadata: dict = {
            f"{i.name}/{figure}": value
            for i in report.indicators
            for figure, value in (
                ("value", i.value),
                ("objective", i.objective),
                ("budget_left", i.budget_left),
                ("burn_rate", i.burn_rate),
            )
            if value is not None
        }
        metadata["incidents"] = MetadataValue.md(
            "| sli | day | from | to | cause | detail |\n|---|---|---|---|---|---|\n"
            + "\n".join(
                f"| {i.sli} | {i.day or '-'} | {i.start:%Y-%m-%d %H:%M} | "
                f"{f'{i.end:%Y-%m-%d %H:%M}' if i.end else 'ongoing'} | {i.cause} | {i.detail} |"
                for i in report.incidents[-50:]
            )
        )
        out = report.out_of_budget
        audit = Audit(
            "slo_budget",
            not out,
            f"out of budget: {', '.join(out)}" if out else "every SLI is within its budget",
            metadata,
        )
        return check_result(audit, CheckPolicy(severity="warn"))

    return _slo


def _freshness_result(
    mart: Mart,
    serving: ServingDatabase,
    landing: LandingSnapshot,
    now: dt.datetime,
    policy: CheckPolicy,
    key: AssetKey,
    failed: dict[str, list[str]],
    stale: set,
    built: dict,
) -> AssetCheckResult:
    rows = partition_freshness(mart, serving, landing, now, failed=failed, stale=stale, built=built)
    overdue = [r.day.isoformat() for r in rows if r.status == "overdue"]
    failed_days = [f"{r.day} ({r.failed_asset} failed)" for r in rows if r.status == "failed"]
    waiting = [r.day.isoformat() for r in rows if r.status in ("stale", "not_built")]
    table = "| day | status | landing changed | refreshed |\n|---|---|---|---|\n" + "\n".join(
        f"| {r.day} | {r.status} | {r.landing_changed_at or '-'} | {r.refreshed_at or '-'} |"
        for r in rows
    )
    audit = Audit(
        "partition_freshness",
        not overdue and not failed_days,
        "; ".join(
            part
            for part in (
                f"overdue: {', '.join(overdue)}" if overdue else "",
                f"not repaired: {', '.join(failed_days)}" if failed_days else "",
            )
            if part
        )
        or "no partition is overdue",
        {
            "fresh_days": sum(r.status == "fresh" for r in rows),
            "waiting_days": len(waiting),
            "overdue_days": len(overdue),
            "failed_days": len(failed_days),
            "partitions": MetadataValue.md(table),
        },
    )
    return check_result(audit, policy, key)


def _reconcile(
    rec: Reconciliation,
    window: tuple[dt.date, dt.date],
    warehouse: IcebergWarehouse,
    duckdb: DuckDBResource,
    key: AssetKey,
) -> AssetCheckResult:
    """Runs `rec.sql` over the marts it names (each read for the run's days); passes when the
    query returns no rows, i.e. nothing disagrees."""
    from marts_project.marts import contract_of

    start, end = window
    inputs = {
        t: warehouse.read(
            table_identifier(asset_key_for_table(t)), contract_of(t).partition_column, start, end
        )
        for t in sql_inputs(rec.sql)
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
    return check_result(audit, rec.policy, key)
