"""Parse one landing file against its source contract: typed rows out, bad rows to quarantine.

Every physical row of a file ends up in exactly one of the two outputs, so
rows in = rows published + rows quarantined, always.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from dagster_duckdb import DuckDBResource

from marts_project.core.column_types import duckdb_type
from marts_project.raw.sources import SourceSpec
from marts_project.resources.sql import run_sql

QUARANTINE_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("partition_date", pa.date32()),
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
        ("reason", pa.string()),
        ("record", pa.string()),
    ]
)


_CARRYABLE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # extra columns kept only with safe names


class LandingFileError(ValueError):
    """A landing file that cannot be read at all (empty, not UTF-8, unusable header)."""


class SchemaDriftError(LandingFileError):
    """A landing file lacks a required column: its source's partition is blocked."""


@dataclass(frozen=True)
class ParsedFile:
    valid: pa.Table
    quarantine: pa.Table
    rows_in: int
    ignored_columns: tuple[str, ...]
    carried_columns: tuple[str, ...] = ()
    # file -> the contract's optional columns its header lacks (they load as null)
    missing_optional: dict[str, tuple[str, ...]] = field(default_factory=dict)
    rows_in_by_day: dict[dt.date, int] = field(default_factory=dict)  # rows of each file


def read_header(handle: BinaryIO, spec: SourceSpec, source_file: str) -> list[str]:
    """The file's column names (its first line), after checking required columns."""
    first = handle.readline()
    if not first.strip() and not handle.read(UTF8_CHUNK).strip():
        raise LandingFileError(f"{source_file}: empty file, expected a CSV header")
    try:
        first_line = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _not_utf8(source_file, exc.start) from exc
    header = next(csv.reader(io.StringIO(first_line)), [])
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        duplicated = sorted({h for h in header if header.count(h) > 1})
        raise LandingFileError(
            f"{source_file}: duplicate column names in header: {shown_names(duplicated)}"
        )
    missing = [name for name in spec.required if name not in header]
    if missing:
        raise SchemaDriftError(
            f"{spec.name}: required column(s) {', '.join(missing)} missing from {source_file} "
            f"(found {len(header)} columns: {shown_names(header)}); partition blocked until "
            "the file is fixed"
        )
    return header


def shown_names(names: list[str], most: int = 12, width: int = 24) -> str:
    """Column names as an error may show them: a few, each cut short, printable only. A
    file's first line is content (a link to another file, a data row where the header should
    be): it must not travel whole into errors, event logs and compute logs."""

    def cut(name: str) -> str:
        clean = "".join(c if c.isprintable() else "?" for c in name)
        return clean if len(clean) <= width else clean[: width - 1] + "…"

    listed = ", ".join(cut(n) for n in names[:most])
    return listed + (f", … ({len(names) - most} more)" if len(names) > most else "")


UTF8_CHUNK = 1 << 20
BLOCK_BYTES = 16 << 20  # a large file is read this much at a time
GROUP_BYTES = 64 << 20  # text columns typed and checked in one DuckDB query, at most about


def _not_utf8(source_file: str, byte: int) -> LandingFileError:
    return LandingFileError(
        f"{source_file}: not UTF-8 (byte {byte}); ask the source to re-export as UTF-8"
    )


def _first_non_utf8(file: LandingFile) -> LandingFileError | None:
    """The error naming the file's first byte that is not UTF-8, None when all of it is.

    Only asked after Arrow refused a file: Arrow checks UTF-8 as it converts text (without
    saying where), so the happy path decodes nothing twice (a Python decode of every block
    cost ~0.2 s a week at 100,000 ad rows a day)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with file.open() as raw:
        while True:
            data = raw.read(UTF8_CHUNK)
            try:
                decoder.decode(data, final=not data)
            except UnicodeDecodeError as exc:
                return _not_utf8(file.source_file, offset + exc.start)
            if not data:
                return None
            offset += len(data)


@dataclass(frozen=True)
class LandingFile:
    """One landing file: how to open it, the day it delivers, its name relative to the root."""

    open: Callable[[], BinaryIO]
    day: dt.date
    source_file: str

    @classmethod
    def of_bytes(cls, payload: bytes, day: dt.date, source_file: str) -> LandingFile:
        return cls(lambda: io.BytesIO(payload), day, source_file)


def parse_landing_file(
    payload: bytes, spec: SourceSpec, day: dt.date, source_file: str, duckdb: DuckDBResource
) -> ParsedFile:
    """Split one landing file into typed rows for `day` and quarantined rows with reasons."""
    return parse_landing_files([LandingFile.of_bytes(payload, day, source_file)], spec, duckdb)


Malformed = tuple[LandingFile, int, str, str]  # file, line, reason, text


def _read_strings(
    file: LandingFile,
    spec: SourceSpec,
    malformed: list[Malformed],
    extras: list[str],
    by_day: dict[dt.date, int],
    missing_optional: dict[str, tuple[str, ...]],
    numbered: bool,
) -> Iterator[pa.Table]:
    """The file as text columns with line numbers, a block at a time (at least one, maybe
    empty); its malformed rows go to `malformed`, its columns outside the contract to
    `extras`, the optional columns it lacks to `missing_optional` and its row count
    (malformed rows included) to `by_day`.

    `numbered` reads on one thread, which is how Arrow tells each malformed row's line.
    Otherwise Arrow reads on every core and a malformed row is only counted, with line -1:
    the line numbers given are right for a file without malformed rows, and a file with
    any is read again numbered (`parse_landing_files`)."""
    with file.open() as raw:
        header = read_header(raw, spec, file.source_file)
        extras += [h for h in header if h not in extras]
        optional = [c.name for c in spec.columns if not c.required and c.name not in header]
        if optional:
            missing_optional[file.source_file] = tuple(optional)
        raw.seek(0)
        bad_lines: list[int] = []

        def on_invalid(row: pacsv.InvalidRow) -> str:
            reason = f"malformed row: expected {row.expected_columns} fields, got "
            line = row.number if numbered else -1  # None when Arrow reads on every core
            malformed.append((file, line, reason + str(row.actual_columns), row.text))
            if numbered:
                bad_lines.append(line)
            by_day[file.day] = by_day.get(file.day, 0) + 1
            return "skip"

        try:
            reader = pacsv.open_csv(
                raw,
                read_options=pacsv.ReadOptions(
                    use_threads=not numbered, encoding="utf-8", block_size=BLOCK_BYTES
                ),
                parse_options=pacsv.ParseOptions(
                    invalid_row_handler=on_invalid, ignore_empty_lines=False
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False
                ),
            )
            next_line = 2  # line 1 is the header; rows are numbered by their line in the file
            # and a last empty block: a file of a header alone still gives the typed schema
            empty = pa.RecordBatch.from_pylist([], schema=reader.schema)
            for batch in itertools.chain(reader, [empty]):
                strings = pa.Table.from_batches([batch]).rename_columns(header)
                n = strings.num_rows
                by_day[file.day] = by_day.get(file.day, 0) + n
                lines = _line_numbers(next_line, n, [b for b in bad_lines if b >= next_line])
                next_line = lines[-1].as_py() + 1 if n else next_line
                yield _with_provenance(strings, file, spec, header, lines)
        except pa.ArrowInvalid as exc:
            unreadable = LandingFileError(f"{file.source_file}: unreadable CSV: {exc}")
            raise (_first_non_utf8(file) or unreadable) from exc


def _line_numbers(first: int, n: int, bad: list[int]) -> pa.Array:
    """The lines of the next `n` parsed rows from line `first` on, skipping malformed lines."""
    ones = pa.repeat(pa.scalar(1, pa.int64()), n + len(bad))  # a Python range: ~20x slower
    lines = pc.cumulative_sum(ones, start=pa.scalar(first - 1, pa.int64()))
    if bad:
        lines = lines.filter(pc.invert(pc.is_in(lines, pa.array(bad, pa.int64()))))
    return lines[:n]


def _with_provenance(
    strings: pa.Table, file: LandingFile, spec: SourceSpec, header: list[str], lines: pa.Array
) -> pa.Table:
    """Text columns plus line, file and day of each row, and null optional columns it lacks."""
    n = strings.num_rows
    strings = strings.append_column("_source_line", lines)
    strings = strings.append_column(
        "_source_file", pa.repeat(pa.scalar(file.source_file, pa.string()), n)
    )
    strings = strings.append_column("_file_day", pa.repeat(pa.scalar(file.day, pa.date32()), n))
    for column in spec.columns:
        if column.name not in header:  # optional column the file does not carry: null
            strings = strings.append_column(column.name, pa.nulls(n, pa.string()))
    return strings


def _groups(tables: Iterable[pa.Table]) -> Iterator[pa.Table]:
    """Blocks of text gathered up to GROUP_BYTES: a week of small files is one DuckDB query (a
    query per file would dominate a long backfill), a huge file is several."""
    group, size = [], 0
    for table in tables:
        group.append(table)
        size += table.nbytes
        if size >= GROUP_BYTES:
            yield pa.concat_tables(group, promote_options="default")
            group, size = [], 0
    if group:
        yield pa.concat_tables(group, promote_options="default")


def parse_landing_files(
    files: list[LandingFile], spec: SourceSpec, duckdb: DuckDBResource
) -> ParsedFile:
    """Split landing files into typed rows and quarantined rows with reasons, streaming: a
    block of text at a time is typed and checked, only typed rows are kept.

    Files are read on every core first, without line numbers; a file with a malformed or
    rejected row is read again on one thread, numbered, so that each quarantined row keeps
    its file, line and text (the common case, a file of valid rows, is read once)."""
    fast, dirty = _parse(files, spec, duckdb, numbered=False)
    if not dirty:
        return fast
    again, _ = _parse([f for f in files if f.source_file in dirty], spec, duckdb, numbered=True)
    clean = pc.invert(pc.is_in(fast.valid.column("_source_file"), pa.array(sorted(dirty))))
    by_day = {**fast.rows_in_by_day, **again.rows_in_by_day}  # a file per day
    return ParsedFile(
        valid=pa.concat_tables([fast.valid.filter(clean), again.valid], promote_options="default"),
        quarantine=again.quarantine,
        rows_in=sum(by_day.values()),
        ignored_columns=fast.ignored_columns,
        carried_columns=fast.carried_columns,
        rows_in_by_day=by_day,
        missing_optional=fast.missing_optional,
    )


def _parse(
    files: list[LandingFile], spec: SourceSpec, duckdb: DuckDBResource, numbered: bool
) -> tuple[ParsedFile, set[str]]:
    """`parse_landing_files` in one pass, `numbered` or not (`_read_strings`), and the files
    that had a malformed or rejected row. Unnumbered, rejected rows are not kept: they are
    quarantined by the numbered pass over their files."""
    malformed: list[Malformed] = []
    extras: list[str] = []
    by_day: dict[dt.date, int] = {}
    missing_optional: dict[str, tuple[str, ...]] = {}
    typed_cols = [c.name for c in spec.columns]
    if spec.derive_date_from or spec.date_from_file:
        typed_cols.append(spec.date_column)
    drift = _DriftTally(spec)
    valid_parts, rejected_parts = [], []
    dirty: set[str] = set()
    blocks = (
        table
        for file in files
        for table in _read_strings(
            file, spec, malformed, extras, by_day, missing_optional, numbered
        )
    )
    for strings in _groups(blocks):
        checked = run_sql(duckdb, _typing_sql(spec), {"landing": strings})
        ok = pc.equal(checked.column("_reason"), "")
        clean = pc.all(ok).as_py() is not False  # the common case: every row passes, no copy
        drift.add(strings, ok, duckdb)
        valid = checked if clean else checked.filter(ok)
        valid = valid.select([*typed_cols, "_source_line", "_source_file", "_value_issues"])
        if spec.extra_columns == "carry":  # rows of `strings` and `checked` are in line order
            for name in _carryable(strings.column_names, typed_cols):
                carried = strings.column(name)
                valid = valid.append_column(name, carried if clean else carried.filter(ok))
        valid_parts.append(valid)
        if clean:
            continue
        rejected = checked.filter(pc.invert(ok)).select(
            ["_file_day", "_source_file", "_source_line", "_reason"]
        )
        if not numbered:
            dirty.update(pc.unique(rejected.column("_source_file")).to_pylist())
            continue
        records = _records(spec, strings.filter(pc.invert(ok)), duckdb)
        rejected_parts.append(rejected.append_column("record", pa.array(records, pa.string())))
    drift.refuse()
    dirty.update(f.source_file for f, *_ in malformed)
    extras = [h for h in extras if h not in typed_cols]
    carried = _carryable(extras, typed_cols) if spec.extra_columns == "carry" else []
    parsed = ParsedFile(
        valid=_concat(valid_parts, carried),
        quarantine=_quarantine(spec, rejected_parts, malformed if numbered else []),
        rows_in=sum(by_day.values()),
        ignored_columns=tuple(h for h in extras if h not in carried),
        carried_columns=tuple(carried),
        rows_in_by_day=by_day,
        missing_optional=missing_optional,
    )
    return parsed, dirty


def _carryable(names: list[str], typed_cols: list[str]) -> list[str]:
    """Extra columns kept on the raw table: not the contract's, not ours, with a safe name."""
    return [n for n in names if n not in typed_cols and _CARRYABLE.match(n)]


def _concat(parts: list[pa.Table], carried: list[str]) -> pa.Table:
    """The typed parts as one table, every carried column present (null where a file lacked it)."""
    if not parts:
        raise LandingFileError("no landing file to parse")
    table = pa.concat_tables(parts, promote_options="default")
    for name in carried:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
    return table


def _quarantine(spec: SourceSpec, rejected: list[pa.Table], malformed: list[Malformed]) -> pa.Table:
    """Rejected and malformed rows, each with its file, line and reason (QUARANTINE_SCHEMA)."""
    bad = pa.table(
        {
            "_file_day": pa.array([f.day for f, *_ in malformed], pa.date32()),
            "_source_file": pa.array([f.source_file for f, *_ in malformed], pa.string()),
            "_source_line": pa.array([n for _, n, *_ in malformed], pa.int64()),
            "_reason": pa.array([r for *_, r, _ in malformed], pa.string()),
            "record": pa.array([t for *_, t in malformed], pa.string()),
        }
    )
    rows = pa.concat_tables([*rejected, bad])
    return pa.table(
        [
            pa.repeat(pa.scalar(spec.name, pa.string()), rows.num_rows),
            rows.column("_file_day"),
            rows.column("_source_file"),
            rows.column("_source_line"),
            rows.column("_reason"),
            rows.column("record"),
        ],
        schema=QUARANTINE_SCHEMA,
    )


class _DriftTally:
    """Per file, how many values of each required typed column were present and how many were
    not of the contract's type, summed over a file's blocks (see `refuse`)."""

    def __init__(self, spec: SourceSpec):
        self.spec = spec
        self.required = [c for c in spec.columns if c.required and c.type != "string"]
        self.files: dict[str, dict[str, list]] = {}

    def add(self, strings: pa.Table, ok: pa.ChunkedArray, duckdb: DuckDBResource) -> None:
        """Tally a block of text rows; `ok` marks the rows that passed the contract. A passing
        row has every required value present and typed, so only the rejected rows are read."""
        if not self.required or strings.num_rows == 0:
            return
        files = pc.value_counts(strings.column("_source_file")).to_pylist()
        rows_of = {entry["values"]: entry["counts"] for entry in files}
        rejected = strings.filter(pc.invert(ok))
        stats = []
        if rejected.num_rows:
            parts = []
            for col in self.required:
                value = f"nullif(trim(\"{col.name}\"), '')"
                cast = f"try_cast({value} as {duckdb_type(col.type)})"
                parts.append(
                    f'count(*) filter (where {value} is null) as "{col.name}__missing", '
                    f"count(*) filter (where {value} is not null and {cast} "
                    f'is null) as "{col.name}__bad", '
                    f"any_value({value}) filter (where {cast} is null) "
                    f'as "{col.name}__example"'
                )
            stats = run_sql(
                duckdb,
                f"select _source_file, {', '.join(parts)} from landing group by _source_file",
                {"landing": rejected},
            ).to_pylist()
        by_file = {row["_source_file"]: row for row in stats}
        for source_file, rows in rows_of.items():
            row = by_file.get(source_file, {})
            tally = self.files.setdefault(source_file, {})
            for c in self.required:
                present, bad, example = tally.get(c.name, [0, 0, None])
                tally[c.name] = [
                    present + rows - row.get(c.name + "__missing", 0),
                    bad + row.get(c.name + "__bad", 0),
                    example if example is not None else row.get(c.name + "__example"),
                ]

    def refuse(self) -> None:
        """A required column none of whose values in a file has the contract's type was retyped
        by the source: schema drift to fix at the source, not a few bad rows to quarantine."""
        for source_file, tally in self.files.items():
            retyped = [
                f"{c.name} (none of {tally[c.name][0]} values is a {c.type}, "
                f"e.g. {tally[c.name][2]!r})"
                for c in self.required
                if tally[c.name][0] and tally[c.name][1] == tally[c.name][0]
            ]
            if retyped:
                raise SchemaDriftError(
                    f"{self.spec.name}: required column(s) retyped in {source_file}: "
                    f"{'; '.join(retyped)}; partition blocked until the file is fixed"
                )


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _typing_sql(spec: SourceSpec) -> str:
    """Generated (from our own contract, never from file content) SQL that types and checks.

    A row is quarantined (`_reason`) when a required value is missing or invalid or its date
    does not belong to the file; an invalid *optional* value becomes null and the row is kept,
    with what was nulled and why in `_value_issues`.

    Each value is trimmed once and cast once (`text` and `typed` below) and every check reads
    those: written inline, a value's trim and cast were repeated in each of its checks.
    """
    slots: dict[tuple[str, str], int] = {}  # (column, type) -> its v<i> / t<i> columns

    def slot(name: str, type_: str) -> int:
        return slots.setdefault((name, duckdb_type(type_)), len(slots))

    checks, issues, typed = [], [], []
    for col in spec.columns:
        i = slot(col.name, col.type)
        value, cast = f"v{i}", f"t{i}"
        invalid = (
            f"case when {value} is not null and {cast} is null "
            f"then '{col.name}: not a valid {col.type}' end"
        )
        if col.required:
            checks.append(
                f"case when {value} is null then '{col.name}: required value missing' end"
            )
            checks.append(invalid)
            if col.accepted_values:
                listed = ", ".join(_literal(v.upper()) for v in col.accepted_values)
                checks.append(
                    f"case when upper({value}) not in ({listed}) then '{col.name}: ' || "
                    f"{value} || ' is not one of {', '.join(col.accepted_values)}' end"
                )
        else:
            issues.append(invalid.replace("' end", " (' || " + value + " || '), set to null' end"))
        typed.append(f'{cast} as "{col.name}"')
    if spec.date_from_file:  # order events: the file's day is the order date they belong to
        typed.append(f'_file_day as "{spec.date_column}"')
        day_expr = None
    elif spec.derive_date_from:
        day_expr = f"(t{slot(spec.derive_date_from, 'timestamptz')} at time zone 'UTC')::date"
        typed.append(f'{day_expr} as "{spec.date_column}"')
    else:
        day_expr = f"t{slot(spec.date_column, 'date')}"
    if day_expr:
        checks.append(
            f"case when {day_expr} > _file_day then '{spec.date_column} ' || {day_expr} || "
            "' is after the file''s day ' || _file_day "
            f"when {day_expr} < _file_day - {int(spec.late_days)} then '{spec.date_column} ' "
            f"|| {day_expr} || ' is more than {int(spec.late_days)} days before the file''s "
            "day ' || _file_day end"
        )
    nulled = f"nullif(concat_ws('; ', {', '.join(issues)}), '')" if issues else "null"
    provenance = "_source_line, _source_file, _file_day"
    text = ", ".join(f"nullif(trim(\"{name}\"), '') as v{i}" for (name, _), i in slots.items())
    casts = ", ".join(f"try_cast(v{i} as {type_}) as t{i}" for (_, type_), i in slots.items())
    return (
        f"with text as (select {text}, {provenance} from landing),\n"
        f"typed as (select *, {casts} from text)\n"
        f"select {', '.join(typed)}, {provenance},\n"
        f"  concat_ws('; ', {', '.join(checks)}) as _reason,\n"
        f"  {nulled}::varchar as _value_issues\n"
        "from typed"  # in the order of `landing` (DuckDB keeps insertion order)
    )


def _records(spec: SourceSpec, rows: pa.Table, duckdb: DuckDBResource) -> list[str]:
    """Each row's contract columns as the JSON text it arrived with (what quarantine keeps).

    Built for rejected rows only: a JSON copy of every row doubled a large file's footprint."""
    if not rows.num_rows:
        return []
    record = ", ".join(f"'{c.name}': \"{c.name}\"" for c in spec.columns)
    sql = f"select to_json({{{record}}})::varchar as r from landing "
    sql += "order by _file_day, _source_line"
    return run_sql(duckdb, sql, {"landing": rows}).column("r").to_pylist()
