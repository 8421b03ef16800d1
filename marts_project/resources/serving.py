"""The serving database: one DuckDB file exposing every published mart and the `_v` views, so
an analyst or BI tool opens one file."""

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
from dagster import ConfigurableResource

from marts_project.resources.duck import connect

# DuckDB allows one writing process: wait (up to about two minutes, as several runs of a cluster
# publish at once) for a reader or writer to let go
LOCK_RETRIES = 60


def _quoted(identifier: str) -> tuple[str, str]:
    schema, table = identifier.split(".")
    return f'"{schema}"', f'"{schema}"."{table}"'


class ViewAuditError(RuntimeError):
    """A new view definition returned rows its contract forbids; the old view is kept."""


class ServingDatabase(ConfigurableResource):
    """A DuckDB file refreshed right after each mart commit (only the days that changed)."""

    path: str

    def connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        for attempt in range(LOCK_RETRIES):
            try:
                return connect(self.path, read_only=read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or attempt == LOCK_RETRIES - 1:
                    raise
                time.sleep(min(2.0, 0.1 * 2**attempt))
        raise AssertionError("unreachable")

    def publish(
        self,
        identifier: str,
        data: pa.Table,
        full_table: Callable[[], pa.Table],
        column: str | None = None,
        start: dt.date | None = None,
        end: dt.date | None = None,
    ) -> str:
        """Replace the days [start, end) of `identifier` (or all of it) in one transaction.

        A table that is new, or whose columns changed, is reloaded whole from `full_table()`.
        """
        schema, table = _quoted(identifier)
        with self.connect() as con:
            con.execute(f"create schema if not exists {schema}")
            current = con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = ? and table_name = ? order by ordinal_position",
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
        return identifier

    def create_view(
        self,
        identifier: str,
        select_sql: str,
        audit: Callable[[pa.Table], list[str]] | None = None,
    ) -> int:
        """Create or replace a view in one transaction, published only if what it returns
        passes `audit` (its failures raise ViewAuditError and the old view stays). Returns the
        number of rows the view returns."""
        schema, view = _quoted(identifier)
        with self.connect() as con:
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
            con.execute("commit")
        return rows.num_rows

    def describe(self, identifier: str) -> list[tuple[str, str]]:
        """(column, type) of a served table or view."""
        with self.connect(read_only=True) as con:
            return [
                (name, kind)
                for name, kind, *_ in con.execute(f"describe {_quoted(identifier)[1]}").fetchall()
            ]

    def refreshed_by_day(
        self, identifier: str, column: str, start: dt.date, end: dt.date
    ) -> dict[dt.date, dt.datetime]:
        """Day -> when the served rows of that day in [start, end] were last recomputed (what
        consumers see, which may lag Iceberg when a serving refresh failed)."""
        if not Path(self.path).exists():
            return {}
        schema, table = _quoted(identifier)
        with self.connect(read_only=True) as con:
            found = con.execute(
                "select count(*) from information_schema.tables "
                "where table_schema = ? and table_name = ?",
                identifier.split("."),
            ).fetchone()[0]
            if not found:
                return {}
            rows = con.execute(
                f'select "{column}", max(_last_refreshed_at) from {table} '
                f'where "{column}" between ? and ? group by 1',
                [start, end],
            ).fetchall()
        return {day: stamp.astimezone(dt.UTC) for day, stamp in rows}

    def read(self, identifier: str) -> pa.Table:
        """Everything a served table or view holds (what an analyst would see)."""
        with self.connect(read_only=True) as con:
            return con.sql(f"select * from {_quoted(identifier)[1]}").to_arrow_table()
