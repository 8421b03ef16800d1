"""What each partition was built from: a code version derived from what defines a table, and
the build record the lake keeps per partition.

A code version hashes a table's SQL normalized by sqlglot (a comment or a reformat is no
change), its contract or `tables.yml` entry, and the version of the layer code that builds it
(`LAYER_CODE`, bumped by hand when that Python changes what it writes). Dagster gets it as the
asset's `code_version` (the UI marks partitions built with another one as unsynced).

The build record of a partition is an Iceberg table property `marts.built.<partition key>`
(`marts.built` for an unpartitioned table) set in the same commit as the partition's data: the
code version, when, by which run, and for raw tables the version of every landing file read.
It lives in the lake, so losing or migrating Dagster's storage costs no rebuild, and a
concurrent writer of other partitions never overwrites it (each write sets only its own keys).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

from marts_project.core.lineage import ALL_COLUMNS, ROWS

# The version of the Python that turns a layer's definitions into rows; bump one when a change
# there alters what the layer writes, and every table of that layer is rebuilt.
LAYER_CODE = {"raw": "1", "sql": "1", "mart": "1", "view": "1"}

CODE_VERSION_METADATA = "marts/code_version"  # the asset metadata key the IO manager reads
CODE_PARTS_METADATA = "marts/code_parts"  # and what the version is made of
ON_CHANGE_METADATA = "contract/on_change"  # what a code change rebuilds (a mart's contract)
# output metadata of a raw step: partition key -> {landing file: version read}
LANDING_METADATA = "landing/versions"
# output metadata: the blocking checks the write failed (nothing downstream may build on it)
BLOCKING_FAILED_METADATA = "marts/blocking_checks_failed"
# output metadata of a derived step: input table -> columns read, output column -> its code
READS_METADATA = "marts/reads"
COLUMNS_METADATA = "marts/columns"
# asset metadata: what defines every column (`shared`) and each (`columns`): `column_versions`
COLUMN_PARTS_METADATA = "marts/column_parts"
BUILT = "marts.built"  # table property prefix of the build records


def _digest(value: object) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def code_parts(layer: str, **parts: object) -> dict[str, str]:
    """A digest of each thing that defines a table (named by the file it comes from: its
    normalized SQL, its contract as data) and the version of its layer's code."""
    return {f"{layer} layer code": LAYER_CODE[layer]} | {
        name: _digest(value) for name, value in parts.items()
    }


def code_version(parts: Mapping[str, str]) -> str:
    """A table's code version: one digest of its `code_parts`."""
    return _digest(dict(parts))


def changed_parts(before: Mapping[str, str] | None, now: Mapping[str, str]) -> list[str]:
    """The names of the parts that differ (all of them when `before` is unknown)."""
    if not before:
        return sorted(now)
    return sorted(k for k in {*before, *now} if before.get(k) != now.get(k))


@dataclass(frozen=True)
class BuildRecord:
    """What one partition of a table was last built from. Immutable, so its digests (`source`,
    `view`) are computed once per record: a plan asks for them once per reader partition."""

    code: str
    at: dt.datetime
    run: str
    parts: dict[str, str] | None = None  # the code parts behind `code` (`code_parts`)
    landing: dict[str, str] | None = None  # raw tables: landing file -> version read
    blocked: tuple[str, ...] = ()  # blocking checks this write failed: readers must not build
    rows: int = 0  # the write's rows, shared out over its partitions (for estimates)
    seconds: float = 0.0  # the step's transform time, shared out over its partitions
    # derived tables: output column -> its column-level code (`lineage.column_reads`)
    columns: dict[str, str] | None = None
    # derived tables: input table -> the columns of it the build read
    reads: dict[str, list[str]] | None = None
    # derived tables: `input_key(input, partition)` -> the input's `view` for those columns
    inputs: dict[str, str] | None = None

    @cached_property
    def source(self) -> str | None:
        """What this partition's rows were computed from: the landing file versions it read
        (raw), the views of its inputs it read (derived); None for a record without either."""
        if self.landing is not None:
            return _digest(self.landing)
        if self.inputs is not None:
            return _digest(self.inputs)
        return None

    def view(self, columns: Iterable[str]) -> str | None:
        """The version of `columns` of this partition (`ALL_COLUMNS`: all of them): what they
        were computed from and their column-level code. Equal views are equal data (the same
        inputs through the same code), so a reader of only these columns need not rebuild when
        another column is added or changes. None when the record cannot say."""
        wanted = frozenset(columns)
        views = self.__dict__.setdefault("_views", {})  # not a field: eq and encode ignore it
        if wanted not in views:
            views[wanted] = self._view(wanted)
        return views[wanted]

    def _view(self, wanted: frozenset[str]) -> str | None:
        if (source := self.source) is None:
            return None
        if self.columns is None:  # no column-level code (raw tables): the whole table's
            return _digest([source, self.code])
        names = sorted(self.columns) if ALL_COLUMNS in wanted else sorted(wanted | {ROWS})
        fallback = self.columns.get(ALL_COLUMNS)
        return _digest([source, [(name, self.columns.get(name, fallback)) for name in names]])

    def encode(self) -> str:
        body = {"code": self.code, "at": self.at.isoformat(), "run": self.run}
        if self.parts is not None:
            body["parts"] = self.parts
        if self.landing is not None:
            body["landing"] = self.landing
        if self.blocked:
            body["blocked"] = list(self.blocked)
        for name in ("columns", "reads", "inputs"):
            if (value := getattr(self, name)) is not None:
                body[name] = value
        body |= {"rows": self.rows, "seconds": round(self.seconds, 3)}
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> BuildRecord | None:
        """None for a record this code cannot read (the partition then counts as unbuilt)."""
        try:
            body = json.loads(text)
            return cls(
                code=str(body["code"]),
                at=dt.datetime.fromisoformat(body["at"]),
                run=str(body.get("run", "")),
                parts=body.get("parts"),
                landing=body.get("landing"),
                blocked=tuple(body.get("blocked", ())),
                rows=int(body.get("rows", 0)),
                seconds=float(body.get("seconds", 0.0)),
                columns=body.get("columns"),
                reads=body.get("reads"),
                inputs=body.get("inputs"),
            )
        except (ValueError, KeyError, TypeError):
            return None


def input_key(identifier: str, partition_key: str | None) -> str:
    """How a build record names one partition (None: the whole) of a table it read."""
    return f"{identifier}|{partition_key}" if partition_key else identifier


def column_versions(
    sql_code: Mapping[str, str], shared: Mapping[str, str], per_column: Mapping[str, str]
) -> dict[str, str]:
    """Each output column's code version: its query pruned to it (`lineage.column_reads`), the
    parts that define every column (`shared`: a layer's code, a contract but its columns) and
    its own part of the contract (`per_column`)."""
    return {
        name: _digest([digest, dict(shared), per_column.get(name)])
        for name, digest in sql_code.items()
    }


@dataclass(frozen=True)
class Lineage:
    """What a derived table's write read: its column-level code, the columns it read of each
    input, and per partition the input views it read (None when an input had no record)."""

    columns: dict[str, str]
    reads: dict[str, list[str]]
    inputs: dict[str | None, dict[str, str]] | None


def record_property(partition_key: str | None) -> str:
    return f"{BUILT}.{partition_key}" if partition_key else BUILT


def build_properties(
    partition_keys: Iterable[str] | None,
    code: str,
    parts: Mapping[str, str] | None,
    run_id: str,
    rows: int | Mapping[str, int],
    seconds: float,
    landing: Mapping[str, Mapping[str, str]] | None = None,
    blocked: Iterable[str] | Mapping[str, Iterable[str]] = (),
    at: dt.datetime | None = None,
    lineage: Lineage | None = None,
) -> dict[str, str]:
    """The table properties recording a write of `partition_keys` (None: unpartitioned);
    `landing` gives each partition the landing file versions it read; `at` is when it was
    built (a mart's refresh time, which its served rows carry as `_last_refreshed_at`);
    `lineage` what a derived table's partitions read of their inputs. `rows` are each
    partition's own (`partitions.rows_per_partition`) or the write's, shared evenly; `blocked`
    the blocking checks the write failed, or each partition's (a raw day judged alone)."""
    keys = list(partition_keys) if partition_keys is not None else [None]
    at = at or dt.datetime.now(dt.UTC)
    share = max(len(keys), 1)
    return {
        record_property(key): BuildRecord(
            code=code,
            at=at,
            run=run_id,
            parts=dict(parts) if parts else None,
            landing=dict(landing.get(key, {})) if landing is not None and key else None,
            blocked=tuple(blocked.get(key, ()) if isinstance(blocked, Mapping) else blocked),
            rows=rows.get(key, 0) if isinstance(rows, Mapping) else rows // share,
            seconds=seconds / share,
            columns=lineage.columns if lineage else None,
            reads=lineage.reads if lineage else None,
            inputs=lineage.inputs.get(key) if lineage and lineage.inputs is not None else None,
        ).encode()
        for key in keys
    }


def read_records(properties: Mapping[str, str]) -> dict[str | None, BuildRecord]:
    """Partition key (None: unpartitioned) -> its build record, from a table's properties."""
    found: dict[str | None, BuildRecord] = {}
    for name, value in properties.items():
        if name != BUILT and not name.startswith(BUILT + "."):
            continue
        key = name[len(BUILT) + 1 :] or None
        if (record := BuildRecord.decode(value)) is not None:
            found[key] = record
    return found
