"""The serving databases analysts and BI tools open: one DuckDB file per reader, so file
permissions keep each domain's analysts to their own marts.

`<root>/<domain>/serving.duckdb` holds a domain's marts, its `_v` views and the marts other
domains grant it; `<root>/<domain>__<mart>/serving.duckdb` one regulated mart alone (the plan
comes from the contracts: `marts_project/governance/access.py`). Inside each file a mart keeps its
`domain.mart` name, so the same SQL runs on any database that holds what it reads.
"""

from __future__ import annotations

import datetime as dt
import grp
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa
from dagster import ConfigurableResource

from marts_project.core.contracts import DOMAINS
from marts_project.resources.duck import LOCKED_DOWN, attached, connect

# DuckDB allows one writing process: wait (up to about two minutes, as several runs of a cluster
# publish at once) for a reader or writer to let go
LOCK_RETRIES = 60
FILE = "serving.duckdb"
T = TypeVar("T")


def _waiting_for_lock(open_database: Callable[[], T]) -> T:
    """`open_database()`, retried while another process holds the file's lock."""
    for attempt in range(LOCK_RETRIES):
        try:
            return open_database()
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or attempt == LOCK_RETRIES - 1:
                raise
            time.sleep(min(2.0, 0.1 * 2**attempt))
    raise AssertionError("unreachable")


def _quoted(identifier: str) -> tuple[str, str]:
    schema, table = identifier.split(".")
    return f'"{schema}"', f'"{schema}"."{table}"'


class ViewAuditError(RuntimeError):
    """A new view definition returned rows its contract forbids; the old view is kept."""


class ServingDatabase(ConfigurableResource):
    """The serving databases, each mart refreshed right after its commit (only the days that
    changed) in every database the plan names for it."""

    root: str
    # `domain.mart` -> its serving databases, its own first. A name the plan does not know is
    # served from its schema's (domain's) database.
    plan: dict[str, list[str]] = {}
    # database -> the OS group whose members may read it; a database without one is readable by
    # the pipeline's own user only
    groups: dict[str, str] = {}

    def databases_of(self, identifier: str) -> list[str]:
        return self.plan.get(identifier) or [identifier.split(".")[0]]

    def home(self, identifier: str) -> str:
        """The database a mart is read from (its domain's, or its own when regulated)."""
        return self.databases_of(identifier)[0]

    def path(self, database: str) -> Path:
        return Path(self.root) / database / FILE

    def databases(self) -> list[str]:
        """Every database the plan names, in the plan's order."""
        names = [db for databases in self.plan.values() for db in databases]
        return list(dict.fromkeys(names))

    @contextmanager
    def connect(
        self, database: str, read_only: bool = False
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to `database` for the block (the file attached to the process's DuckDB:
        ~1.5 ms instead of ~20 ms for a database of its own; a refresh opens dozens)."""
        if not read_only:
            self._guard(database)
        with ExitStack() as stack:  # entered by the retried call, exited after the block
            path = str(self.path(database))
            yield _waiting_for_lock(lambda: stack.enter_context(attached(path, read_only)))

    def _guard(self, database: str) -> None:
        """The database's folder readable by its group only: the folder, not each file, keeps
        others out of the file and its write-ahead log (which comes and goes under another
        process's checkpoint, so it is never touched here)."""
        folder = self.path(database).parent
        folder.mkdir(parents=True, exist_ok=True)
        group = self.groups.get(database)
        if group:
            try:
                gid = grp.getgrnam(group).gr_gid
            except KeyError:
                raise ValueError(
                    f"serving database {database}: no OS group {group!r} (MARTS_SERVING_GROUPS)"
                ) from None
            os.chown(folder, -1, gid)
        os.chmod(folder, 0o750 if group else 0o700)

    def publish(
        self,
        identifier: str,
        data: pa.Table,
        full_table: Callable[[], pa.Table],
        column: str | None = None,
        start: dt.date | None = None,
        end: dt.date | None = None,
    ) -> list[str]:
        """Replace the days [start, end) of `identifier` (or all of it) in each of its databases,
        one transaction each; returns the databases. A rerun rewrites the same days, so a
        failure between two databases is repaired by retrying the write.

        A table that is new, or whose columns changed, is reloaded whole from `full_table()`.
        """
        databases = self.databases_of(identifier)
        for database in databases:
            self._publish(database, identifier, data, full_table, column, start, end)
        return databases

    def _publish(self, database, identifier, data, full_table, column, start, end) -> None:
        schema, table = _quoted(identifier)
        with self.connect(database) as con:
            con.execute(f"create schema if not exists {schema}")
            current = con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_catalog = current_database() and table_schema = ? "
                "and table_name = ? order by ordinal_position",
                identifier.split("."),
            ).fetchall()
            con.register("incoming", data)
            incoming = con.execute("describe incoming").fetchall()
            same_shape = [tuple(c[:2]) for c in incoming] == [tuple(c) for c in current]
            con.execute("begin transaction")
            if same_shape and column and start and end:
                con.execute(
                    f'delete from {table} where "{column}" >= ? and "{column}" < ?', [start, end]
                )
                con.execute(f"insert into {table} select * from incoming")
            elif same_shape and not column:
                con.execute(f"delete from {table}")
                con.execute(f"insert into {table} select * from incoming")
            else:
                con.register("full_table", full_table())
                con.execute(f"create or replace table {table} as select * from full_table")
            con.execute("commit")

    def create_view(
        self,
        identifier: str,
        select_sql: str,
        audit: Callable[[pa.Table], list[str]] | None = None,
        record: str | None = None,
    ) -> int:
        """Create or replace a view in one transaction, published only if what it returns
        passes `audit` (its failures raise ViewAuditError and the old view stays), with
        `record` (its build record, `versions.py`) as the view's comment. Returns the number
        of rows the view returns."""
        schema, view = _quoted(identifier)
        database = self.home(identifier)
        with self.connect(database) as con:
            con.execute("begin transaction")
            con.execute(f"create schema if not exists {schema}")
            con.execute(f"create or replace view {view} as {select_sql}")
            rows = con.sql(f"select * from {view}").to_arrow_table()
            if audit and (failures := audit(rows)):
                con.execute("rollback")
                raise ViewAuditError(
                    f"{identifier}: audit failed, the view served before stays: "
                    + "; ".join(failures)
                )
            if record is not None:
                con.execute(f"comment on view {view} is '{record.replace(chr(39), chr(39) * 2)}'")
            con.execute("commit")
        return rows.num_rows

    def view_record(self, identifier: str) -> str | None:
        """The build record a view was created with (its comment), None when there is none."""
        database = self.home(identifier)
        if not self.path(database).exists():
            return None
        schema, name = identifier.split(".")
        with self.connect(database, read_only=True) as con:
            found = con.execute(
                "select comment from duckdb_views() where database_name = current_database() "
                "and schema_name = ? and view_name = ?",
                [schema, name],
            ).fetchone()
        return found[0] if found else None

    def describe(self, identifier: str) -> list[tuple[str, str]]:
        """(column, type) of a served table or view."""
        with self.connect(self.home(identifier), read_only=True) as con:
            return [
                (name, kind)
                for name, kind, *_ in con.execute(f"describe {_quoted(identifier)[1]}").fetchall()
            ]

    def refreshed_by_day(
        self, identifier: str, column: str, start: dt.date, end: dt.date
    ) -> dict[dt.date, dt.datetime]:
        """Day -> when the served rows of that day in [start, end] were last recomputed in every
        database serving them (what consumers see, which may lag Iceberg when a serving refresh
        failed: a day counts from its oldest copy, and not at all when one database lacks it)."""
        per_database = [
            self._refreshed_in(database, identifier, column, start, end)
            for database in self.databases_of(identifier)
        ]
        days = set.intersection(*(set(stamps) for stamps in per_database))
        return {day: min(stamps[day] for stamps in per_database) for day in days}

    def _refreshed_in(self, database, identifier, column, start, end) -> dict:
        if not self.path(database).exists():
            return {}
        with self.connect(database, read_only=True) as con:
            found = con.execute(
                "select count(*) from information_schema.tables "
                "where table_catalog = current_database() and table_schema = ? "
                "and table_name = ?",
                identifier.split("."),
            ).fetchone()[0]
            if not found:
                return {}
            rows = con.execute(
                f'select "{column}", max(_last_refreshed_at) from {_quoted(identifier)[1]} '
                f'where "{column}" between ? and ? group by 1',
                [start, end],
            ).fetchall()
        return {day: stamp.astimezone(dt.UTC) for day, stamp in rows}

    def read(self, identifier: str) -> pa.Table:
        """Everything a served table or view holds (what an analyst would see)."""
        with self.connect(self.home(identifier), read_only=True) as con:
            return con.sql(f"select * from {_quoted(identifier)[1]}").to_arrow_table()

    @contextmanager
    def operator_view(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One read-only, locked-down connection over every domain's database: each mart under
        its `domain.mart` name, read from its own database. Regulated marts are not in it (they
        are read from their own database, and audited).

        The views are written to a scratch file first, which is then reopened read-only: an
        in-memory database cannot be read-only."""
        attached = {
            f"serving_{db}": self.path(db)
            for db in self.databases()
            if db in DOMAINS and self.path(db).exists()
        }
        with tempfile.TemporaryDirectory(prefix="marts-operator-") as scratch:
            views = str(Path(scratch) / "operator.duckdb")
            with connect(views) as con:
                self._attach(con, attached)
                served = con.execute(
                    "select table_catalog, table_schema, table_name from information_schema.tables"
                ).fetchall()
                for catalog, schema, table in served:
                    if (
                        catalog in attached
                        and f"serving_{self.home(f'{schema}.{table}')}" == catalog
                    ):
                        con.execute(f'create schema if not exists "{schema}"')
                        con.execute(
                            f'create view "{schema}"."{table}" as '
                            f'select * from {catalog}."{schema}"."{table}"'
                        )
            con = connect(views, read_only=True)
            try:
                self._attach(con, attached)
                for setting, value in LOCKED_DOWN.items():
                    con.execute(f"set {setting} = {str(value).lower()}")
                con.execute("set lock_configuration = true")
                yield con
            finally:
                con.close()

    @staticmethod
    def _attach(con: duckdb.DuckDBPyConnection, databases: dict[str, Path]) -> None:
        for catalog, path in databases.items():
            attach = f"attach '{path}' as {catalog} (read_only)"
            _waiting_for_lock(lambda attach=attach: con.execute(attach))
