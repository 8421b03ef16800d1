"""The embedded instance's event log: Dagster's consolidated SQLite storage, with a connection
pool instead of a new database engine for every event.

Why: a refresh stores about 500 events (one per step start, output, materialization, check and
plan entry). Dagster's default SQLite event log keeps a file per run plus an index file and,
like its consolidated variant, builds a new SQLAlchemy engine and connection for every read and
write: a few connections per event, about 7 ms an event here against about 2 ms through a pool
(measured 300 materializations each way; BENCHMARKS.md, small refreshes). The database is one
file in WAL mode (set by Dagster when it creates it), which lets the daemon, the webserver and a
CLI run read while one writes. Its connections commit with `synchronous=NORMAL`, SQLite's
recommended setting for WAL: a commit no longer waits for the disk (an fsync of the log per
event: 0.21 ms against 0.03 ms a commit on this machine's fast virtual disk, a millisecond or
more on most; a 7-day backfill commits about 1,900 times). The database stays consistent
after a power loss; the last events before it may be missing, which leaves a run looking
unfinished until run monitoring marks it failed, and its partitions to be rewritten (every
write is idempotent), never a wrong record.

Private API, isolated here: `ConsolidatedSqliteEventLogStorage` is a public class, but Dagster
exports it only from `dagster._core.storage.event_log`, and the pool replaces its `_connect`
(and remembers what `_has_asset_key_col_on_connection` found).
If an upgrade changes either, the instance fails to load with an error naming this module;
the fallback is to delete the `event_log_storage` block of `dagster.yaml` (Dagster's default).
Production scale-out uses PostgreSQL storage, where Dagster pools connections itself.
"""

import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property

# Private: the storage class Dagster's own `event_log_storage` config names, exported only
# here; there is no public extension point for an event log's connections.
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage

# Private: Dagster's own busy timeout for its SQLite storages, kept so the pool waits on a
# locked database exactly as Dagster's connections do (no public constant).
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection

_OPEN: "weakref.WeakSet[PooledSqliteEventLogStorage]" = weakref.WeakSet()


class RemembersTables:
    """An event log storage that asks whether a table exists until it does, then remembers:
    a table once there stays (a migration only adds them). Dagster asks before it writes each
    materialization's indexed tags (its data and code versions)."""

    def has_table(self, table_name: str) -> bool:
        known = self.__dict__.setdefault("_tables_seen", set())
        if table_name not in known and self._asks_has_table(table_name):
            known.add(table_name)
        return table_name in known

    def _asks_has_table(self, table_name: str) -> bool:
        return super().has_table(table_name)  # type: ignore[misc]


class PooledSqliteEventLogStorage(RemembersTables, ConsolidatedSqliteEventLogStorage):
    """Consolidated SQLite event log whose connections come from one pool per process."""

    @cached_property
    def _engine(self) -> Engine:
        _OPEN.add(self)
        engine = create_engine(
            self._conn_string,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        event.listen(engine, "connect", _commit_without_fsync)
        return engine

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    def _asks_has_table(self, table_name: str) -> bool:
        """Asked through the pool: Dagster's own check builds a new engine each time."""
        with self._engine.connect() as conn:
            return bool(self._engine.dialect.has_table(conn, table_name))

    def _has_asset_key_col_on_connection(self, conn: Connection, column_name: str) -> bool:
        """Whether the asset table has a column, reflected once: a column once there stays (a
        migration only adds them). Dagster reflects the table's columns for each asset event
        it stores and each partition status it reads (about 1 ms each on SQLite)."""
        known = self.__dict__.setdefault("_asset_columns_seen", set())
        if column_name not in known and super()._has_asset_key_col_on_connection(conn, column_name):
            known.add(column_name)
        return column_name in known

    def dispose(self) -> None:
        super().dispose()
        if "_engine" in self.__dict__:
            self._engine.dispose()


def _commit_without_fsync(dbapi_connection, _record) -> None:
    dbapi_connection.execute("pragma synchronous = normal")


def _forget_parent_connections() -> None:
    """A forked child must not use its parent's SQLite handles: it opens its own."""
    for storage in list(_OPEN):
        storage._engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_parent_connections)
