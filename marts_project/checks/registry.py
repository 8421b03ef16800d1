"""Every check a contract can name, in one place: what it proves, when it is judged, and the
function that judges it. Contracts are validated against it (an unknown name is refused with the
file), the write runs its audits from it, and Dagster's specs take their descriptions from it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from marts_project.checks.audits import (
    Audit,
    audit_accepted_values,
    audit_row_count_floor,
    audit_schema,
    audit_unique_key,
    audit_value_ranges,
)
from marts_project.core.contracts import Contract

FRESHNESS_WINDOW_DAYS = 7  # the days the nightly reprocess covers: what an SLA can promise about

WriteAudit = Callable[[Contract, pa.Table, "list[dt.date] | None", bool], Audit]


@dataclass(frozen=True)
class CheckKind:
    """A check: its description, and the audit that judges a write's staged rows before they
    are published (None: judged after the mart, on its own, by the clock or other marts:
    `observability/contract_checks.py`)."""

    description: str
    audit: WriteAudit | None = None


CHECKS: dict[str, CheckKind] = {  # the write audits first, in the order they run
    "matches_contract": CheckKind(
        "Columns, types and nullability match the contract file.",
        lambda contract, rows, periods, nullability: audit_schema(
            contract, rows.schema, nullability
        ),
    ),
    "unique_key": CheckKind(
        "The unique key is unique and never null in the days a run wrote.",
        lambda contract, rows, periods, nullability: audit_unique_key(contract, rows),
    ),
    "row_count_floor": CheckKind(
        "Every partition a run wrote holds at least the contract's row floor.",
        lambda contract, rows, periods, nullability: audit_row_count_floor(contract, rows, periods),
    ),
    "accepted_values": CheckKind(
        "Columns with accepted values hold nothing else.",
        lambda contract, rows, periods, nullability: audit_accepted_values(contract, rows),
    ),
    "value_ranges": CheckKind(
        "Columns with a min / max stay within it.",
        lambda contract, rows, periods, nullability: audit_value_ranges(contract, rows),
    ),
    "recency": CheckKind("The newest partition is within the freshness SLA."),
    "partition_freshness": CheckKind(
        f"Each of the last {FRESHNESS_WINDOW_DAYS} days was refreshed after its landing data "
        "last changed, or is still within the SLA of that change."
    ),
}

# Judged on the rows a write stages, before they are published, and reported with the write.
WRITE_AUDITS = tuple(name for name, kind in CHECKS.items() if kind.audit is not None)


def write_audits(
    contract: Contract,
    table: pa.Table,
    periods: list[dt.date] | None,
    nullability: bool = True,
) -> list[Audit]:
    """The audits of a write's rows that the contract lists, in one pass: the schema (with
    nullability for a table; a view's columns carry none) and the data audits."""
    return [
        kind.audit(contract, table, periods, nullability)
        for name, kind in CHECKS.items()
        if kind.audit is not None and contract.policy(name)
    ]
