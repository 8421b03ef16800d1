"""Mart contracts (YAML beside each mart's SQL): the one source of a mart's schema, docs and SLA."""

from __future__ import annotations

import functools
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    TableColumn,
    TableColumnConstraints,
    TableSchema,
    TimeWindowPartitionsDefinition,
)
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    model_validator,
)

from marts_project.core.column_types import TypeName, arrow_type
from marts_project.core.partitions import PARTITIONINGS
from marts_project.core.yaml_files import read_yaml

# The data domains: each owns its marts, its warehouse namespace and its serving database.
Domain = Literal["marketing", "finance", "operations"]
DOMAINS: tuple[str, ...] = Domain.__args__


class ContractViolation(ValueError):
    """The table a mart's SQL produced does not match its contract."""


class ContractFileError(ValueError):
    """A contract file is malformed: says which file, which field and why."""


class _Model(BaseModel):
    """A part of a contract: immutable, and any key the model does not know is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ContractColumn(_Model):
    name: str
    type: TypeName
    nullable: bool
    description: str
    pii: bool = False
    accepted_values: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None


class CheckPolicy(_Model):
    """How a check failure is treated, as the contract says (`error, blocking` / `warn`)."""

    severity: Literal["error", "warn"]
    blocking: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        words = [w.strip().lower() for w in value.split(",")]
        if words[0] not in ("error", "warn") or set(words[1:]) - {"blocking"}:
            raise ValueError(
                f"check policy {value!r}: expected 'error', 'error, blocking' or 'warn'"
            )
        return {"severity": words[0], "blocking": "blocking" in words[1:]}


class Reconciliation(_Model):
    """A cross-mart check: SQL over this mart and others returning the rows that disagree."""

    name: str
    description: str
    sql: str
    policy: CheckPolicy


class Slo(_Model):
    """A mart's service-level objectives over a rolling window: each ratio is the share of good
    (time fresh, rows complete, writes conformant, runs succeeded;
    `marts_project/observability/slo.py` says exactly how each is measured); latency is the p95
    hours from a landing file's arrival to the refresh that served it. An objective left out is
    not promised."""

    freshness: float | None = Field(None, gt=0, lt=1)
    completeness: float | None = Field(None, gt=0, lt=1)
    conformance: float | None = Field(None, gt=0, lt=1)
    success_rate: float | None = Field(None, gt=0, lt=1)
    latency_p95_hours: float | None = Field(None, gt=0)
    window_days: PositiveInt = 28


def _items(value: Any) -> Any:
    """A YAML mapping as the (key, value) pairs a frozen model keeps, in file order."""
    return tuple(value.items()) if isinstance(value, dict) else value


def _rules(value: Any) -> Any:
    """Rules as (topic, text) pairs, each text's line breaks and indentation folded."""
    pairs = _items(value)
    if isinstance(pairs, tuple):
        return tuple((str(k), " ".join(str(v).split())) for k, v in pairs)
    return pairs


class Contract(_Model):
    """What a mart promises its consumers."""

    name: str
    domain: Domain
    owner: str
    charter: str
    grain: str
    freshness_sla_hours: PositiveInt
    unique_key: tuple[str, ...]
    columns: tuple[ContractColumn, ...]
    partition_column: str | None = None
    # daily | weekly | monthly | none (default: daily when there is a partition column)
    partitioning: Literal["daily", "weekly", "monthly", "none"] = "none"
    kind: Literal["table", "view"] = "table"  # view: in the serving database, always fresh
    row_count_floor: NonNegativeInt = 1  # rows each partition (or the whole table) must have
    # check name -> policy; the names a deployment knows are its registry's (`checks/registry.py`)
    checks: Annotated[tuple[tuple[str, CheckPolicy], ...], BeforeValidator(_items)] = ()
    reconciliations: tuple[Reconciliation, ...] = ()
    slo: Slo | None = None
    # Other domains whose analysts (and marts) may read this mart: served into their databases
    # too and readable by their storage identity. Nothing crosses a domain without it.
    serve_to: tuple[Domain, ...] = ()
    # Served only from a database of its own, never granted to another domain, every `marts
    # sql` on it recorded in the audit trail.
    regulated: bool = False
    # (topic, rule) a consumer needs to read a number; the rule's whitespace is folded
    rules: Annotated[tuple[tuple[str, str], ...], BeforeValidator(_rules)] = ()
    # What a change to this mart's SQL or contract rebuilds: every partition (`all`), the
    # partitions of the last N closed days (`last N days`), or none until someone backfills
    # them (`manual`). Partitions left keep the rows of the code that built them; `marts plan`
    # lists them as kept.
    on_change: Annotated[str, Field(pattern=r"^(all|manual|last [1-9][0-9]* days)$")] = "all"

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, body: Any) -> Any:
        if isinstance(body, dict) and "partitioning" not in body:
            body = {**body, "partitioning": "daily" if body.get("partition_column") else "none"}
        return body

    @model_validator(mode="after")
    def _consistent(self) -> Contract:
        names = set(self.column_names)
        if unknown := [c for c in self.unique_key if c not in names]:
            raise ValueError(f"unique_key names columns the contract does not have: {unknown}")
        if self.partition_column and self.partition_column not in names:
            raise ValueError(f"partition_column {self.partition_column!r} is not a column")
        if self.domain in self.serve_to:
            raise ValueError(f"serve_to names the mart's own domain {self.domain!r}")
        if self.regulated and self.serve_to:
            raise ValueError("a regulated mart is served only from its own database: no serve_to")
        if self.regulated and self.kind == "view":
            raise ValueError("a view cannot be regulated: it is served from its domain's database")
        if (self.partition_column is None) != (self.partitioning == "none"):
            raise ValueError(
                f"partitioning {self.partitioning!r} and partition_column "
                f"{self.partition_column!r} disagree: a partitioned mart names its day column"
            )
        return self

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
def load_contract(path: Path, known_checks: Collection[str] | None = None) -> Contract:
    """Parse a contract file; a malformed one fails loudly at definition load, naming the file,
    the field and the rule it breaks (with `known_checks`, a check no registry has too)."""
    try:
        contract = Contract.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise ContractFileError(f"{path}: {exc}") from None
    unknown = [name for name, _ in contract.checks if name not in (known_checks or [name])]
    if unknown:
        raise ContractFileError(
            f"{path}: checks: unknown check {unknown[0]!r}; known: "
            + ", ".join(sorted(known_checks or ()))
        )
    return contract
