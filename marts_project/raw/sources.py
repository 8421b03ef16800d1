"""Landing-file contracts loaded from `sources.yml`."""

from __future__ import annotations

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

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


@functools.cache
def source_specs() -> dict[str, SourceSpec]:
    raw = yaml.safe_load(SOURCES_FILE.read_text())
    return {
        name: SourceSpec(
            name=name,
            description=body["description"],
            date_column=body["date_column"],
            key=tuple(body["key"]),
            columns=tuple(SourceColumn(**c) for c in body["columns"]),
            derive_date_from=body.get("derive_date_from"),
            date_from_file=bool(body.get("date_from_file", False)),
            max_quarantine_share=float(body.get("max_quarantine_share", 0.05)),
            extra_columns=_extra_rule(name, body.get("extra_columns", "ignore")),
        )
        for name, body in raw.items()
    }


def _extra_rule(source: str, rule: str) -> str:
    if rule not in ("ignore", "carry"):
        raise ValueError(f"{source}: extra_columns must be 'ignore' or 'carry', not {rule!r}")
    return rule
