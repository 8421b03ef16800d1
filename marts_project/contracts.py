"""Mart contracts (YAML beside each mart's SQL): the one source of a mart's schema, docs and SLA."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import yaml
from dagster import (
    TableColumn,
    TableColumnConstraints,
    TableSchema,
    TimeWindowPartitionsDefinition,
)

from marts_project.partitions import PARTITIONINGS

_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
_TYPES = {
    "date": pa.date32(),
    "string": pa.string(),
    "bigint": pa.int64(),
    "integer": pa.int32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}


KNOWN_CHECKS = {
    "matches_contract",
    "unique_key",
    "row_count_floor",
    "accepted_values",
    "value_ranges",
    "recency",
    "partition_freshness",
}


class ContractViolation(ValueError):
    """The table a mart's SQL produced does not match its contract."""


def arrow_type(name: str) -> pa.DataType:
    """Arrow type of a contract type name (`date`, `bigint`, `decimal(18,2)`, ...)."""
    if match := _DECIMAL.match(name):
        return pa.decimal128(int(match[1]), int(match[2]))
    try:
        return _TYPES[name]
    except KeyError:
        raise ValueError(f"unknown contract type {name!r}; use one of {sorted(_TYPES)}") from None


@dataclass(frozen=True)
class ContractColumn:
    name: str
    type: str
    nullable: bool
    description: str
    pii: bool = False
    accepted_values: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class CheckPolicy:
    """How a check failure is treated, as the contract says (`error, blocking` / `warn`)."""

    severity: str  # error | warn
    blocking: bool

    @classmethod
    def parse(cls, text: str) -> CheckPolicy:
        words = [w.strip().lower() for w in str(text).split(",")]
        if words[0] not in ("error", "warn") or set(words[1:]) - {"blocking"}:
            raise ValueError(
                f"check policy {text!r}: expected 'error', 'error, blocking' or 'warn'"
            )
        return cls(words[0], "blocking" in words[1:])


@dataclass(frozen=True)
class Reconciliation:
    """A cross-mart check: SQL over this mart and others returning the rows that disagree."""

    name: str
    description: str
    sql: str
    policy: CheckPolicy


@dataclass(frozen=True)
class Contract:
    """What a mart promises its consumers."""

    name: str
    domain: str
    owner: str
    charter: str
    grain: str
    freshness_sla_hours: int
    unique_key: tuple[str, ...]
    columns: tuple[ContractColumn, ...]
    partition_column: str | None = None
    partitioning: str = "daily"  # daily | weekly | monthly | none
    kind: str = "table"  # table (Iceberg) | view (in the serving database, always fresh)
    row_count_floor: int = 1  # rows each partition (or the whole unpartitioned table) must have
    checks: tuple[tuple[str, CheckPolicy], ...] = ()
    reconciliations: tuple[Reconciliation, ...] = ()
    rules: tuple[tuple[str, str], ...] = ()  # (topic, rule) a consumer needs to read a number

    def policy(self, check: str) -> CheckPolicy | None:
        """The contract's policy for a check, None if the contract does not ask for it."""
        return dict(self.checks).get(check)

    @property
    def partitions_def(self) -> TimeWindowPartitionsDefinition | None:
        """The partitions definition the contract's `partitioning` names."""
        return PARTITIONINGS[self.partitioning]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def description(self) -> str:
        rules = "".join(f"\n- **{topic}**: {rule}" for topic, rule in self.rules)
        text = f"{self.charter}\n\nGrain: {self.grain}. Owner: {self.owner}."
        return f"{text}\n\nRules:{rules}" if rules else text

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, arrow_type(c.type), nullable=c.nullable) for c in self.columns]
        )

    def column_schema(self) -> TableSchema:
        """Dagster `dagster/column_schema` metadata, straight from the contract."""
        return TableSchema(
            columns=[
                TableColumn(
                    name=c.name,
                    type=c.type,
                    description=c.description + (" (PII)" if c.pii else ""),
                    constraints=TableColumnConstraints(
                        nullable=c.nullable,
                        unique=self.unique_key == (c.name,),
                        other=_constraints(c),
                    ),
                    tags={"pii": ""} if c.pii else {},
                )
                for c in self.columns
            ]
        )

    def conform(self, table: pa.Table) -> pa.Table:
        """The SQL's output cast to the contract schema; raises if it does not match.

        Columns must match by name and set exactly; types must be castable without loss of
        meaning (same type family); non-nullable columns must hold no nulls.
        """
        expected = [c.name for c in self.columns]
        missing = [n for n in expected if n not in table.column_names]
        extra = [n for n in table.column_names if n not in expected]
        if missing or extra:
            raise ContractViolation(
                f"{self.name}: SQL output does not match its contract: "
                f"missing {missing or 'none'}, not in contract {extra or 'none'}"
            )
        table = table.select(expected)
        for col in self.columns:
            actual = table.schema.field(col.name).type
            if not compatible(actual, arrow_type(col.type)):
                raise ContractViolation(
                    f"{self.name}.{col.name}: SQL produces {actual}, contract says {col.type}"
                )
            nulls = table.column(col.name).null_count
            if not col.nullable and nulls:
                raise ContractViolation(
                    f"{self.name}.{col.name}: {nulls} null values in a non-nullable column"
                )
        return table.cast(self.arrow_schema)


def _constraints(column: ContractColumn) -> list[str]:
    other = []
    if column.accepted_values:
        other.append(f"one of {', '.join(column.accepted_values)}")
    if column.min is not None:
        other.append(f">= {column.min}")
    if column.max is not None:
        other.append(f"<= {column.max}")
    return other


def compatible(actual: pa.DataType, expected: pa.DataType) -> bool:
    families = (
        pa.types.is_integer,
        pa.types.is_floating,
        pa.types.is_decimal,
        pa.types.is_string,
        pa.types.is_large_string,
        pa.types.is_boolean,
        pa.types.is_date,
        pa.types.is_timestamp,
    )
    if pa.types.is_string(expected):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual)
    if pa.types.is_floating(expected):  # ratios may come out of SQL as decimal or double
        return any(f(actual) for f in (pa.types.is_floating, pa.types.is_decimal))
    if pa.types.is_timestamp(expected):
        return pa.types.is_timestamp(actual) and (actual.tz is not None) == (
            expected.tz is not None
        )
    return any(f(actual) and f(expected) for f in families)


def null_count(table: pa.Table, columns: list[str]) -> int:
    """Rows with a null in any of `columns`."""
    if not columns or table.num_rows == 0:
        return 0
    mask = functools.reduce(pc.or_, [pc.is_null(table.column(c)) for c in columns])
    return int(pc.sum(mask).as_py() or 0)


@functools.cache
def load_contract(path: Path) -> Contract:
    """Parse a contract file; a malformed one fails loudly at definition load."""
    body = yaml.safe_load(Path(path).read_text())
    allowed = set(ContractColumn.__dataclass_fields__)
    columns = []
    for column in body.get("columns", []):
        if unknown := set(column) - allowed:
            raise ValueError(f"{path}: column {column.get('name')!r} has unknown keys {unknown}")
        arrow_type(column["type"])
        if column.get("accepted_values") is not None:
            column = {**column, "accepted_values": tuple(column["accepted_values"])}
        columns.append(ContractColumn(**column))
    checks = tuple((name, CheckPolicy.parse(text)) for name, text in body.get("checks", {}).items())
    if unknown := {n for n, _ in checks} - KNOWN_CHECKS:
        raise ValueError(f"{path}: unknown checks {unknown}; known: {sorted(KNOWN_CHECKS)}")
    reconciliations = tuple(
        Reconciliation(r["name"], r["description"], r["sql"], CheckPolicy.parse(r["policy"]))
        for r in body.get("reconciliations", [])
    )
    return Contract(
        name=body["name"],
        domain=body["domain"],
        owner=body["owner"],
        charter=body["charter"],
        grain=body["grain"],
        freshness_sla_hours=int(body["freshness_sla_hours"]),
        unique_key=tuple(body["unique_key"]),
        columns=tuple(columns),
        partition_column=body.get("partition_column"),
        partitioning=body.get("partitioning", "daily" if body.get("partition_column") else "none"),
        kind=body.get("kind", "table"),
        row_count_floor=int(body.get("row_count_floor", 1)),
        checks=checks,
        reconciliations=reconciliations,
        rules=tuple((str(k), " ".join(str(v).split())) for k, v in body.get("rules", {}).items()),
    )
