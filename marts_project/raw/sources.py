"""Landing-file contracts loaded from `sources.yml`."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError, model_validator

from marts_project.core.column_types import TypeName
from marts_project.core.partitions import days_fed_by
from marts_project.core.yaml_files import read_yaml

SOURCES_FILE = Path(__file__).with_name("sources.yml")


class SourcesFileError(ValueError):
    """`sources.yml` is malformed: says which source, which field and why."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceColumn(_Model):
    name: str
    type: TypeName
    required: bool
    pii: bool = False
    accepted_values: tuple[str, ...] | None = None  # compared case-insensitively


class SourceSpec(_Model):
    """What one source must deliver in each landing file."""

    name: str
    description: str
    date_column: str
    key: tuple[str, ...]
    columns: tuple[SourceColumn, ...]
    derive_date_from: str | None = None
    date_from_file: bool = False
    max_quarantine_share: float = Field(0.05, ge=0, le=1)
    extra_columns: Literal["ignore", "carry"] = "ignore"  # carry: kept as text in the raw table
    late_days: NonNegativeInt = 0  # a row of day D may arrive in the files of D .. D + late_days
    latest: tuple[str, ...] = ()  # among duplicates of `key`, the greatest of these wins first

    @model_validator(mode="after")
    def _names_its_own_columns(self) -> SourceSpec:
        names = {c.name for c in self.columns}
        if self.derive_date_from or self.date_from_file:
            names.add(self.date_column)  # derived by the raw layer, not delivered
        named = {*self.key, *self.latest, self.date_column, self.derive_date_from} - {None}
        if unknown := sorted(named - names):
            raise ValueError(f"names columns it does not list: {unknown}")
        return self

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def dedupe_order(self) -> str:
        """SQL `order by` that puts the winning duplicate of a key first: the contract's
        `latest` columns, then the latest file (files are named by day), then its last line."""
        terms = [f'"{name}" desc nulls last' for name in self.latest]
        return ", ".join([*terms, "_source_file desc", "_source_line desc"])

    @property
    def table(self) -> str:
        """The raw table of this source: `raw_<source>`."""
        return raw_table(self.name)

    def days_fed_by(self, file_day: dt.date) -> list[dt.date]:
        """The days whose rows the file of `file_day` may hold (late rows included)."""
        return days_fed_by(file_day, self.late_days)


def raw_table(source: str) -> str:
    """The raw table a landing source loads: `raw_<source>` (in the `raw` namespace)."""
    return f"raw_{source}"


@functools.cache
def source_specs() -> dict[str, SourceSpec]:
    """Every source's contract; a malformed `sources.yml` fails at definition load, naming the
    source, the field and the rule it breaks."""
    specs = {}
    for name, body in read_yaml(SOURCES_FILE).items():
        try:
            specs[name] = SourceSpec.model_validate({"name": name, **body})
        except ValidationError as exc:
            raise SourcesFileError(f"{SOURCES_FILE}: source {name}: {exc}") from None
    return specs
