"""Landing-file contracts loaded from `sources.yml`."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

SOURCES_FILE = Path(__file__).with_name("sources.yml")


@dataclass(frozen=True)
class SourceColumn:
    name: str
    type: str
    required: bool
    pii: bool = False
    accepted_values: tuple[str, ...] | None = None  # compared case-insensitively


@dataclass(frozen=True)
class SourceSpec:
    """What one source must deliver in each landing file."""

    name: str
    description: str
    date_column: str
    key: tuple[str, ...]
    columns: tuple[SourceColumn, ...]
    derive_date_from: str | None = None
    date_from_file: bool = False
    max_quarantine_share: float = 0.05
    extra_columns: str = "ignore"  # ignore | carry (kept as text in the raw table)
    late_days: int = 0  # a row of day D may arrive in the files of D .. D + late_days
    latest: tuple[str, ...] = ()  # among duplicates of `key`, the greatest of these wins first

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def dedupe_order(self) -> str:
        """SQL `order by` that puts the winning duplicate of a key first: the contract's
        `latest` columns, then the latest file (files are named by day), then its last line."""
        terms = [f'"{name}" desc nulls last' for name in self.latest]
        return ", ".join([*terms, "_source_file desc", "_source_line desc"])

    def days_fed_by(self, file_day: dt.date) -> list[dt.date]:
        """The days whose rows the file of `file_day` may hold (late rows included)."""
        return [file_day - dt.timedelta(days=n) for n in range(self.late_days, -1, -1)]


@functools.cache
def source_specs() -> dict[str, SourceSpec]:
    raw = yaml.safe_load(SOURCES_FILE.read_text())
    return {
        name: SourceSpec(
            name=name,
            description=body["description"],
            date_column=body["date_column"],
            key=tuple(body["key"]),
            columns=tuple(_column(c) for c in body["columns"]),
            derive_date_from=body.get("derive_date_from"),
            date_from_file=bool(body.get("date_from_file", False)),
            max_quarantine_share=float(body.get("max_quarantine_share", 0.05)),
            extra_columns=_extra_rule(name, body.get("extra_columns", "ignore")),
            late_days=int(body.get("late_days", 0)),
            latest=tuple(body.get("latest", ())),
        )
        for name, body in raw.items()
    }


def _column(body: dict) -> SourceColumn:
    accepted = body.pop("accepted_values", None)
    return SourceColumn(**body, accepted_values=tuple(accepted) if accepted else None)


def _extra_rule(source: str, rule: str) -> str:
    if rule not in ("ignore", "carry"):
        raise ValueError(f"{source}: extra_columns must be 'ignore' or 'carry', not {rule!r}")
    return rule
