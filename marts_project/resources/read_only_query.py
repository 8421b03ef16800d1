"""Runs an analyst's query on a serving database so that it can read and nothing else.

Two walls. First, every statement is classified by DuckDB's own parser before anything runs:
only queries (`select`, `from`, `with`, `values`, `describe`, `show`, `summarize`) and `explain`
of a query are executed, so `copy ... to`, `export`, `attach`, `set`, `pragma`, `call` and DDL are
refused by type. That wall is needed: with `enable_external_access = false` DuckDB still lets a
connection write the files of the databases it has attached (`allowed_paths`), and read-only
mode does not cover `copy ... to`, so `copy (select 1) to '<the database>'` replaced a serving
database (measured, FACTS.md). Second, the connection itself is locked down (`duck.LOCKED_DOWN`).

A query runs on a worker thread so the caller stays responsive: it is interrupted through
DuckDB's own `interrupt()` when it passes its time limit or when the user presses Ctrl-C.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from collections.abc import Iterator

import duckdb

QUERY_TYPES = frozenset({duckdb.StatementType.SELECT})
_EXPLAIN = re.compile(r"^\s*explain\s+(analyze\s+)?", re.IGNORECASE)


class QueryRefused(ValueError):
    """A statement that could change something (a file, a setting, the catalog)."""


class QueryTimeout(RuntimeError):
    """The query ran past its time limit and was stopped."""


class QueryInterrupted(RuntimeError):
    """The user interrupted the query (SIGINT); it was stopped."""


def check_read_only(text: str) -> list[duckdb.Statement]:
    """The statements of `text` if every one is a query (or `explain` of one).

    Raises:
        QueryRefused: naming the first statement of another type.
        duckdb.ParserException: the text does not parse.
    """
    statements = duckdb.extract_statements(text)
    if not statements:
        raise QueryRefused("no statement to run")
    for statement in statements:
        kind, inner = statement.type, statement
        if kind == duckdb.StatementType.EXPLAIN:  # `explain analyze` runs what it explains
            explained = duckdb.extract_statements(_EXPLAIN.sub("", statement.query, count=1))
            inner = explained[0] if len(explained) == 1 else None
            kind = inner.type if inner is not None else kind
        if kind not in QUERY_TYPES:
            name = kind.name.lower().replace("_", " ")
            raise QueryRefused(
                f"only queries run here (select, with, describe, show, explain select): "
                f"a {name} statement is refused"
            )
    return statements


def run_read_only(
    con: duckdb.DuckDBPyConnection, text: str, timeout_seconds: float
) -> tuple[list[str], list[tuple]]:
    """Column names and rows of the last statement of `text`, after `check_read_only`.

    Raises:
        QueryRefused, QueryTimeout, QueryInterrupted, duckdb.Error.
    """
    statements = check_read_only(text)
    result: dict[str, object] = {}

    def work() -> None:
        try:
            for statement in statements:
                cursor = con.execute(statement)
            columns = [d[0] for d in cursor.description or []]
            result["value"] = (columns, cursor.fetchall() if cursor.description else [])
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc

    worker = threading.Thread(target=work, name="marts-sql", daemon=True)
    deadline = time.monotonic() + timeout_seconds
    with _sigint_as_event() as interrupted:
        worker.start()
        while worker.is_alive():
            worker.join(0.05)
            if interrupted.is_set():
                _stop(con, worker)
                raise QueryInterrupted("query interrupted")
            if worker.is_alive() and time.monotonic() > deadline:
                _stop(con, worker)
                raise QueryTimeout(
                    f"query stopped after its time limit of {timeout_seconds:g} s "
                    "(MARTS_SQL_TIMEOUT_SECONDS)"
                )
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]  # type: ignore[return-value]


@contextlib.contextmanager
def _sigint_as_event() -> Iterator[threading.Event]:
    """Ctrl-C sets an event instead of raising wherever the main thread is. DuckDB's own
    handling of SIGINT during a query let the query return nothing and left the connection
    busy (it then refused to close and the process aborted); interrupting the query from
    here through `interrupt()` ends it cleanly."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return
    previous = signal.signal(signal.SIGINT, lambda *_: event.set())
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop(con: duckdb.DuckDBPyConnection, worker: threading.Thread) -> None:
    """Interrupt the query and wait for DuckDB to give the connection back (a busy connection
    refuses to close)."""
    con.interrupt()
    worker.join()
