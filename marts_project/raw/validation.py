"""Parse one landing file against its source contract: typed rows out, bad rows to quarantine.

Every physical row of a file ends up in exactly one of the two outputs, so
rows in = rows published + rows quarantined, always.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from dagster_duckdb import DuckDBResource

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
    rows_in_by_day: dict[dt.date, int] = field(default_factory=dict)  # rows of each file


def read_header(payload: bytes, spec: SourceSpec, source_file: str) -> list[str]:
    """The file's column names, after checking encoding and required columns."""
    if not payload.strip():
        raise LandingFileError(f"{source_file}: empty file, expected a CSV header")
    _check_utf8(payload, source_file)
    end = payload.find(b"\n")
    first_line = bytes(payload[: end if end >= 0 else len(payload)]).decode("utf-8-sig")
    header = next(csv.reader(io.StringIO(first_line)))
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        raise LandingFileError(f"{source_file}: duplicate column names in header {header}")
    missing = [name for name in spec.required if name not in header]
    if missing:
        raise SchemaDriftError(
            f"{spec.name}: required column(s) {', '.join(missing)} missing from {source_file} "
            f"(header: {', '.join(header)}); partition blocked until the file is fixed"
        )
    return header


UTF8_CHUNK = 1 << 20


def _check_utf8(payload: bytes, source_file: str) -> None:
    """Refuse a file that is not UTF-8, naming the first bad byte, a megabyte at a time (a
    decoded copy of a large file would double its footprint)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(payload)
    for start in range(0, len(payload), UTF8_CHUNK):
        try:
            decoder.decode(view[start : start + UTF8_CHUNK], final=start + UTF8_CHUNK >= len(view))
        except UnicodeDecodeError as exc:
            raise LandingFileError(
                f"{source_file}: not UTF-8 (byte {start + exc.start}); ask the source to "
                "re-export as UTF-8"
            ) from exc


@dataclass(frozen=True)
class LandingFile:
    """One landing file's bytes, the day it delivers and its name relative to the root."""

    payload: bytes
    day: dt.date
    source_file: str


def parse_landing_file(
    payload: bytes, spec: SourceSpec, day: dt.date, source_file: str, duckdb: DuckDBResource
) -> ParsedFile:
    """Split one landing file into typed rows for `day` and quarantined rows with reasons."""
    return parse_landing_files([LandingFile(payload, day, source_file)], spec, duckdb)


def _read_strings(file: LandingFile, spec: SourceSpec) -> tuple[pa.Table, list, list[str]]:
    """The file as text columns with its line numbers, plus its malformed rows and header."""
    header = read_header(file.payload, spec, file.source_file)
    malformed: list[tuple[int | None, str, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        reason = f"malformed row: expected {row.expected_columns} fields, got {row.actual_columns}"
        malformed.append((row.number, reason, row.text))
        return "skip"

    strings = pacsv.read_csv(
        io.BytesIO(file.payload),
        read_options=pacsv.ReadOptions(use_threads=False, encoding="utf-8"),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False
        ),
    )
    strings = strings.rename_columns(header)
    bad_lines = {number for number, *_ in malformed}
    n = strings.num_rows
    lines = range(2, n + len(malformed) + 2)
    if bad_lines:
        lines = [line for line in lines if line not in bad_lines][:n]
    strings = strings.append_column("_source_line", pa.array(lines, pa.int64()))
    strings = strings.append_column(
        "_source_file", pa.repeat(pa.scalar(file.source_file, pa.string()), n)
    )
    strings = strings.append_column("_file_day", pa.repeat(pa.scalar(file.day, pa.date32()), n))
    for column in spec.columns:
        if column.name not in header:  # optional column the file does not carry: null
            strings = strings.append_column(column.name, pa.nulls(n, pa.string()))
    return strings, malformed, header


def parse_landing_files(
    files: list[LandingFile], spec: SourceSpec, duckdb: DuckDBResource
) -> ParsedFile:
    """Split landing files into typed rows and quarantined rows with reasons, in one DuckDB
    pass over all of them (a query per file would dominate a long backfill)."""
    parts, malformed, extras, by_day = [], [], [], {}
    for file in files:
        strings, bad, header = _read_strings(file, spec)
        by_day[file.day] = by_day.get(file.day, 0) + strings.num_rows + len(bad)
        parts.append(strings)
        malformed += [(file, *row) for row in bad]
        extras += [h for h in header if h not in extras]
    strings = pa.concat_tables(parts, promote_options="default")

    _refuse_retyped_columns(spec, strings, duckdb)
    checked = run_sql(duckdb, _typing_sql(spec), {"landing": strings})
    ok = pc.equal(checked.column("_reason"), "")
    typed_cols = [c.name for c in spec.columns]
    if spec.derive_date_from or spec.date_from_file:
        typed_cols.append(spec.date_column)
    valid = checked.filter(ok).select(
        [*typed_cols, "_source_line", "_source_file", "_value_issues"]
    )
    extras = [h for h in extras if h not in typed_cols]
    carried = [h for h in extras if spec.extra_columns == "carry" and _CARRYABLE.match(h)]
    for name in carried:  # rows of `strings` and `checked` are both in file and line order
        valid = valid.append_column(name, strings.column(name).filter(ok))

    rejected = checked.filter(pc.invert(ok))
    records = _records(spec, strings.filter(pc.invert(ok)), duckdb)
    quarantine = pa.table(
        {
            "source": [spec.name] * (rejected.num_rows + len(malformed)),
            "partition_date": rejected.column("_file_day").to_pylist()
            + [f.day for f, *_ in malformed],
            "source_file": rejected.column("_source_file").to_pylist()
            + [f.source_file for f, *_ in malformed],
            "source_line": rejected.column("_source_line").to_pylist()
            + [n for _, n, *_ in malformed],
            "reason": rejected.column("_reason").to_pylist() + [r for *_, r, _ in malformed],
            "record": records + [t for *_, t in malformed],
        },
        schema=QUARANTINE_SCHEMA,
    )
    return ParsedFile(
        valid=valid,
        quarantine=quarantine,
        rows_in=strings.num_rows + len(malformed),
        ignored_columns=tuple(h for h in extras if h not in carried),
        carried_columns=tuple(carried),
        rows_in_by_day=by_day,
    )


def _refuse_retyped_columns(spec: SourceSpec, strings: pa.Table, duckdb: DuckDBResource) -> None:
    """A required column none of whose values in a file has the contract's type was retyped by
    the source: that is schema drift to fix at the source, not a few bad rows to quarantine."""
    required = [c for c in spec.columns if c.required and c.type != "varchar"]
    if not required or strings.num_rows == 0:
        return
    parts = []
    for col in required:
        value = f"nullif(trim(\"{col.name}\"), '')"
        parts.append(
            f'count({value}) as "{col.name}__present", '
            f"count(*) filter (where {value} is not null and try_cast({value} as {col.type}) "
            f'is null) as "{col.name}__bad", '
            f"any_value({value}) filter (where try_cast({value} as {col.type}) is null) "
            f'as "{col.name}__example"'
        )
    stats = run_sql(
        duckdb,
        f"select _source_file, {', '.join(parts)} from landing group by _source_file",
        {"landing": strings},
    )
    for row in stats.to_pylist():
        retyped = [
            f"{c.name} (none of {row[c.name + '__present']} values is a {c.type}, "
            f"e.g. {row[c.name + '__example']!r})"
            for c in required
            if row[c.name + "__present"] and row[c.name + "__bad"] == row[c.name + "__present"]
        ]
        if retyped:
            raise SchemaDriftError(
                f"{spec.name}: required column(s) retyped in {row['_source_file']}: "
                f"{'; '.join(retyped)}; partition blocked until the file is fixed"
            )


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _typing_sql(spec: SourceSpec) -> str:
    """Generated (from our own contract, never from file content) SQL that types and checks.

    A row is quarantined (`_reason`) when a required value is missing or invalid or its date
    does not belong to the file; an invalid *optional* value becomes null and the row is kept,
    with what was nulled and why in `_value_issues`.
    """
    checks, issues, typed = [], [], []
    for col in spec.columns:
        value = f"nullif(trim(\"{col.name}\"), '')"
        cast = f"try_cast({value} as {col.type})"
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
        stamp = f"try_cast(nullif(trim(\"{spec.derive_date_from}\"), '') as timestamptz)"
        day_expr = f"({stamp} at time zone 'UTC')::date"
        typed.append(f'{day_expr} as "{spec.date_column}"')
    else:
        day_expr = f"try_cast(nullif(trim(\"{spec.date_column}\"), '') as date)"
    if day_expr:
        checks.append(
            f"case when {day_expr} > _file_day then '{spec.date_column} ' || {day_expr} || "
            "' is after the file''s day ' || _file_day "
            f"when {day_expr} < _file_day - {int(spec.late_days)} then '{spec.date_column} ' "
            f"|| {day_expr} || ' is more than {int(spec.late_days)} days before the file''s "
            "day ' || _file_day end"
        )
    nulled = f"nullif(concat_ws('; ', {', '.join(issues)}), '')" if issues else "null"
    return (
        f"select {', '.join(typed)}, _source_line, _source_file, _file_day,\n"
        f"  concat_ws('; ', {', '.join(checks)}) as _reason,\n"
        f"  {nulled}::varchar as _value_issues\n"
        f"from landing order by _file_day, _source_line"
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
