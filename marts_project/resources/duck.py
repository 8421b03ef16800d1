"""Every DuckDB connection of the project, pinned to UTC.

DuckDB hands timestamps back in the machine's time zone and reads offset-less timestamp strings
in it; pyiceberg refuses zoned timestamps other than UTC, and every day boundary here is a UTC
day. `SET TimeZone` is the one way that works without the ICU extension as a connection
setting (passing it in `config=` needs ICU, which cannot be downloaded here).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
from dagster_duckdb import DuckDBResource

# A connection that may read only the database it was opened on: no file, network or extension
# access and no way to change that from SQL (what `marts sql` hands an analyst).
LOCKED_DOWN = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


def pin_utc(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    con.execute("set TimeZone = 'UTC'")
    return con


def connect(
    database: str = ":memory:", read_only: bool = False, locked: bool = False
) -> duckdb.DuckDBPyConnection:
    """A UTC connection; `locked` also shuts every door out of the database (see LOCKED_DOWN)."""
    con = pin_utc(
        duckdb.connect(database, read_only=read_only, config=LOCKED_DOWN if locked else {})
    )
    if locked:
        con.execute("set lock_configuration = true")
    return con


_IN_MEMORY: dict[int, duckdb.DuckDBPyConnection] = {}  # by process id: never shared over fork


class UtcDuckDB(DuckDBResource):
    """dagster-duckdb's resource with every connection pinned to UTC.

    An in-memory database is opened once per process and each use gets its own cursor (a
    connection of its own: registered tables and settings do not leak between uses). Opening a
    DuckDB database costs about 20 ms; a one-day refresh opened 98 of them.
    """

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self.database != ":memory:" or self.connection_config:
            with super().get_connection() as con:
                yield pin_utc(con)
            return
        pid = os.getpid()
        if pid not in _IN_MEMORY:
            _IN_MEMORY[pid] = duckdb.connect(":memory:")
        cursor = _IN_MEMORY[pid].cursor()
        try:
            yield pin_utc(cursor)
        finally:
            cursor.close()
