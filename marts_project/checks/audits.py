"""What each contract check judges, as plain functions over Arrow tables.

Write-audit-publish runs a mart's audits once on the rows staged on an Iceberg branch: the
blocking ones decide whether `main` may move, and all of them are reported as the
materialization's check results (`checks/specs.py`).
"""

import datetime as dt
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from marts_project.core.column_types import arrow_type
from marts_project.core.contracts import Contract, compatible, null_count
from marts_project.core.partitions import last_closed_day, period_of


@dataclass(frozen=True)
class Audit:
    name: str
    passed: bool
    message: str
    metadata: dict = field(default_factory=dict)


def schema_differences(
    contract: Contract, schema: pa.Schema, nullability: bool = True
) -> list[str]:
    """How a table's schema departs from the contract (empty when it conforms)."""
    problems = []
    for col in contract.columns:
        if col.name not in schema.names:
            problems.append(f"{col.name}: missing")
            continue
        field_ = schema.field(col.name)
        if not compatible(field_.type, arrow_type(col.type)):
            problems.append(f"{col.name}: {field_.type}, contract says {col.type}")
        if nullability and field_.nullable and not col.nullable:
            problems.append(f"{col.name}: nullable in table, required by contract")
    known = set(contract.column_names)
    problems += [f"{name}: not in contract" for name in schema.names if name not in known]
    return problems


def audit_schema(contract: Contract, schema: pa.Schema, nullability: bool = True) -> Audit:
    problems = schema_differences(contract, schema, nullability)
    return Audit(
        "matches_contract",
        not problems,
        "; ".join(problems) or "columns, types and nullability match the contract",
        {"differences": "; ".join(problems) or "none"},
    )


def key_violations(table: pa.Table, key: list[str]) -> tuple[int, int]:
    """(rows with a null key column, rows beyond the first per duplicated key)."""
    nulls = null_count(table, key)
    if table.num_rows == 0:
        return nulls, 0
    counts = table.group_by(key).aggregate([([], "count_all")])
    duplicates = pc.sum(pc.subtract(counts.column("count_all"), 1)).as_py() or 0
    return nulls, int(duplicates)


def audit_unique_key(contract: Contract, table: pa.Table) -> Audit:
    key = list(contract.unique_key)
    nulls, duplicates = key_violations(table, key)
    return Audit(
        "unique_key",
        nulls == 0 and duplicates == 0,
        f"({', '.join(key)}): {duplicates} duplicate and {nulls} null keys "
        f"in {table.num_rows} rows",
        {"rows": table.num_rows, "null_keys": nulls, "duplicate_keys": duplicates},
    )


def audit_row_count_floor(
    contract: Contract, table: pa.Table, periods: list[dt.date] | None
) -> Audit:
    """Each expected partition period (or the whole table) holds at least the floor."""
    floor = contract.row_count_floor
    if contract.partition_column is None or periods is None:
        short = {"table": table.num_rows} if table.num_rows < floor else {}
    else:
        counts = dict.fromkeys(periods, 0)
        tally = pc.value_counts(table.column(contract.partition_column)).to_pylist()
        counts.update({t["values"]: t["counts"] for t in tally if t["values"] in counts})
        short = {str(p): n for p, n in counts.items() if n < floor}
    return Audit(
        "row_count_floor",
        not short,
        f"below {floor} rows: {short}" if short else f"every partition has >= {floor} rows",
        {"floor": floor, "rows": table.num_rows, "short_partitions": len(short)},
    )


def audit_accepted_values(contract: Contract, table: pa.Table) -> Audit:
    bad = {}
    for col in contract.columns:
        if col.accepted_values and col.name in table.column_names:
            values = table.column(col.name)
            allowed = pa.array(list(col.accepted_values), values.type)
            outside = pc.and_(pc.invert(pc.is_in(values, allowed)), pc.is_valid(values))
            if n := int(pc.sum(outside).as_py() or 0):
                sample = sorted({str(v) for v in values.filter(outside).to_pylist()})[:5]
                bad[col.name] = f"{n} rows outside accepted values, e.g. {sample}"
    return Audit(
        "accepted_values",
        not bad,
        "; ".join(f"{k}: {v}" for k, v in bad.items()) or "all values accepted",
        {"columns_failing": len(bad)},
    )


def audit_value_ranges(contract: Contract, table: pa.Table) -> Audit:
    bad = {}
    for col in contract.columns:
        if col.name not in table.column_names or (col.min is None and col.max is None):
            continue
        values = pc.cast(table.column(col.name), pa.float64())
        low = pc.less(values, col.min) if col.min is not None else None
        high = pc.greater(values, col.max) if col.max is not None else None
        mask = low if high is None else high if low is None else pc.or_(low, high)
        if n := int(pc.sum(mask).as_py() or 0):
            bad[col.name] = f"{n} rows outside [{col.min}, {col.max}]"
    return Audit(
        "value_ranges",
        not bad,
        "; ".join(f"{k}: {v}" for k, v in bad.items()) or "all values within range",
        {"columns_failing": len(bad)},
    )


def audit_recency(contract: Contract, latest: dt.date | None, now: dt.datetime) -> Audit:
    """The newest partition reaches the last day the SLA says must be in (days close at 00:00
    UTC; a week or month counts from its last day)."""
    due = last_closed_day(now - dt.timedelta(hours=contract.freshness_sla_hours))
    last_day = None if latest is None else period_of(contract.partitions_def, latest).last
    passed = last_day is not None and last_day >= due
    return Audit(
        "recency",
        passed,
        f"latest {contract.partition_column} is {latest}; the SLA wants {due} or later",
        {"latest": str(latest), "due": str(due)},
    )


def blocking_failures(contract: Contract, audits: list[Audit]) -> list[str]:
    """Messages of the blocking audits that failed: any one keeps the write from `main`."""
    return [
        f"{audit.name}: {audit.message}"
        for audit in audits
        if contract.policy(audit.name).blocking and not audit.passed
    ]
