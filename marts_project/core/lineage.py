"""What a SQL transform reads, and which input columns each output column comes from (sqlglot),
so asset inputs and `dagster/column_lineage` are derived from the SQL, never hand-written."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pyarrow as pa
from dagster import (
    AssetKey,
    TableColumnDep,
    TableColumnLineage,
    deserialize_value,
    serialize_value,
)

from marts_project.settings import cache_dir

if TYPE_CHECKING:
    from sqlglot import exp

# sqlglot is imported by the functions that parse, which run only when the file cache has no
# answer (`_remembered`): importing it is 0.1 s of every command's start-up otherwise.

# Table name prefix -> the layer / domain namespace (= asset key prefix) it lives in.
NAMESPACES = {
    "raw_": "raw",
    "stg_": "staging",
    "int_": "intermediate",
    "mkt_": "marketing",
    "fin_": "finance",
    "ops_": "operations",
}


def asset_key_for_table(name: str) -> AssetKey:
    for prefix, namespace in NAMESPACES.items():
        if name.startswith(prefix):
            return AssetKey([namespace, name])
    raise ValueError(f"table {name!r} has no layer prefix ({', '.join(NAMESPACES)})")


@functools.cache
def sql_inputs(sql: str) -> tuple[str, ...]:
    """Tables a query reads (its CTEs excluded), sorted. Kept in the file cache: sqlglot's
    parse of the 25 queries cost ~0.15 s of every command's start-up."""
    return tuple(_remembered("inputs", [sql], lambda: _parse_inputs(sql), json.dumps, json.loads))


@functools.cache
def normalized_sql(sql: str) -> str:
    """`sql` as sqlglot prints it without comments, so formatting and comments do not count in
    a code version (`versions.py`); kept in the file cache like the inputs (a parse of every
    query would cost each command's start-up ~0.08 s)."""
    return _remembered("normalized", [sql], lambda: _normalize(sql), json.dumps, json.loads)


@functools.cache
def schema_qualified(sql: str) -> str:
    """`sql` with each table it reads qualified by its namespace (`domain.mart`), as a serving
    view reads the marts of its database; kept in the file cache like the inputs."""
    key = [sql, sorted(NAMESPACES.items())]
    return _remembered("qualified", key, lambda: _qualify(sql), json.dumps, json.loads)


def _qualify(sql: str) -> str:
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, dialect="duckdb")
    inputs = set(sql_inputs(sql))
    for table in tree.find_all(exp.Table):
        if table.name in inputs and not table.db:
            table.set("db", exp.to_identifier(asset_key_for_table(table.name).path[0]))
    return tree.sql(dialect="duckdb")


def _normalize(sql: str) -> str:
    import sqlglot

    statements = sqlglot.parse(sql, dialect="duckdb")
    return ";\n".join(s.sql(dialect="duckdb", comments=False) for s in statements if s)


def _parse_inputs(sql: str) -> list[str]:
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, dialect="duckdb")
    ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
    return sorted({t.name for t in tree.find_all(exp.Table)} - ctes)


def column_lineage(
    sql: str, inputs: dict[str, pa.Schema], output_columns: list[str]
) -> TableColumnLineage:
    """Per output column, the input asset columns it is computed from."""
    columns = tuple(sorted((name, tuple(s.names)) for name, s in inputs.items()))
    return _column_lineage(sql, columns, tuple(output_columns))


def _cache_dir() -> Path:
    """Where derived answers outlive the process (`settings.cache_dir`)."""
    return cache_dir()


T = TypeVar("T")


@functools.cache
def _sqlglot_version() -> str:
    return version("sqlglot")


def _remembered(
    kind: str,
    key: list,
    compute: Callable[[], T],
    dump: Callable[[T], str],
    load: Callable[[str], T],
) -> T:
    """`compute()`, or its answer from the file cache when this `key` was computed before by
    this sqlglot. A cache that cannot be read or written only costs the computation."""
    digest = hashlib.sha256(json.dumps([_sqlglot_version(), *key]).encode()).hexdigest()
    path = _cache_dir() / kind / f"{digest}.json"
    try:
        return load(path.read_text())
    except Exception:  # none yet, or unreadable (torn, another version's): compute it again
        pass
    answer = compute()
    try:  # e.g. a read-only home
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text(dump(answer))
        scratch.replace(path)  # atomic: a concurrent reader sees a whole file or none
    except OSError:
        pass
    return answer


@functools.cache  # the answer only changes with the SQL and the input columns
def _column_lineage(
    sql: str, inputs: tuple[tuple[str, tuple[str, ...]], ...], output_columns: tuple[str, ...]
) -> TableColumnLineage:
    """The walk costs ~0.1 s a mart, paid by every short-lived `marts` command and run worker:
    kept in the file cache."""
    return _remembered(
        "lineage",
        [sql, inputs, output_columns],
        lambda: _walk_lineage(sql, inputs, output_columns),
        serialize_value,
        lambda text: deserialize_value(text, TableColumnLineage),
    )


def _walk_lineage(
    sql: str, inputs: tuple[tuple[str, tuple[str, ...]], ...], output_columns: tuple[str, ...]
) -> TableColumnLineage:
    from sqlglot import exp
    from sqlglot.lineage import lineage

    schema = {name: dict.fromkeys(names, "unknown") for name, names in inputs}
    # every output column in one walk: the query is qualified once and shared sub-lineages
    # are computed once (a call per column re-qualified it each time, ~4x the cost)
    nodes = lineage(None, sql, schema=schema, dialect="duckdb")
    deps: dict[str, list[TableColumnDep]] = {}
    for column in output_columns:
        sources = {
            (leaf.source.name, leaf.name.rsplit(".", 1)[-1])
            for leaf in nodes[column].walk()
            if not leaf.downstream and isinstance(leaf.source, exp.Table)
        }
        deps[column] = [
            TableColumnDep(asset_key=asset_key_for_table(table), column_name=col)
            for table, col in sorted(sources)
        ]
    return TableColumnLineage(deps_by_column=deps)


@functools.cache
def sql_files() -> dict[str, Path]:
    """Every transform's SQL file by the table it builds (the file shares the table's name)."""
    root = Path(__file__).parents[1]  # the package: its layers' folders
    return {
        path.stem: path
        for folder in ("staging", "intermediate", "marts")
        for path in (root / folder).rglob("*.sql")
    }


def upstream_sources(table: str) -> tuple[str, ...]:
    """Landing sources a table is computed from, following the SQL down to raw."""
    raw = [t for t in (table, *upstream_tables(table)) if t.startswith("raw_")]
    return tuple(sorted(t.removeprefix("raw_") for t in raw))


@functools.cache
def upstream_tables(table: str) -> tuple[str, ...]:
    """Every table `table` is computed from, down to raw, following the SQL (itself excluded)."""
    if table.startswith("raw_") or table not in sql_files():
        return ()
    found: set[str] = set()
    for name in sql_inputs(sql_files()[table].read_text()):
        found.update((name, *upstream_tables(name)))
    return tuple(sorted(found))


ROWS = "(rows)"  # the column-level code key of what decides a query's rows (FROM, WHERE, ...)
ALL_COLUMNS = "*"  # every column: a read or a code that could not be resolved column by column


def column_reads(sql: str, inputs: Mapping[str, Iterable[str]]) -> dict:
    """What a query needs of its inputs and what defines each of its output columns, given the
    input tables' columns: `reads` (input table -> the columns it uses anywhere: selected,
    joined on, filtered, grouped by) and `code` (output column -> a digest of the query pruned to
    that column alone, plus `ROWS` for the query pruned to no column). Adding a column changes
    no other column's digest; a new filter or join changes every one. Kept in the file cache."""
    columns = {name: sorted(names) for name, names in sorted(inputs.items())}
    return _remembered(
        "reads", [sql, columns], lambda: _column_reads(sql, columns), json.dumps, json.loads
    )


def _column_reads(sql: str, inputs: dict[str, list[str]]) -> dict:
    import sqlglot
    from sqlglot import exp
    from sqlglot.optimizer.pushdown_projections import pushdown_projections
    from sqlglot.optimizer.qualify import qualify
    from sqlglot.optimizer.scope import traverse_scope

    schema = {name: dict.fromkeys(names, "unknown") for name, names in inputs.items()}
    try:
        tree = qualify(
            sqlglot.parse_one(sql, dialect="duckdb"),
            schema=schema,
            dialect="duckdb",
            validate_qualify_columns=False,
        )
        reads: dict[str, set[str]] = {}
        for scope in traverse_scope(pushdown_projections(tree.copy())):
            for column in scope.columns:
                source = scope.sources.get(column.table)
                if isinstance(source, exp.Table) and source.name in inputs:
                    reads.setdefault(source.name, set()).add(column.name)
        if not isinstance(tree, exp.Select) or tree.args.get("distinct"):
            raise ValueError("no column-level code for a set operation or a DISTINCT")
        code = {ROWS: _pruned(tree, [exp.Literal.number(1)])}
        for projection in tree.selects:
            code[projection.alias_or_name] = _pruned(tree, [projection.copy()])
        return {"reads": {name: sorted(cols) for name, cols in reads.items()}, "code": code}
    except Exception:  # sqlglot cannot resolve it: every input column read, one code for all
        digest = hashlib.sha256(_normalize(sql).encode()).hexdigest()[:12]
        return {"reads": dict.fromkeys(inputs, [ALL_COLUMNS]), "code": {ALL_COLUMNS: digest}}


def _pruned(tree: exp.Select, projections: list[exp.Expression]) -> str:
    """A digest of `tree` selecting only `projections`, every CTE pruned to what they need."""
    from sqlglot.optimizer.pushdown_projections import pushdown_projections

    one = tree.copy()
    one.set("expressions", projections)
    text = pushdown_projections(one).sql(dialect="duckdb", comments=False)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
