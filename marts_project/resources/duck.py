"""Every DuckDB connection of the project, pinned to UTC.

DuckDB hands timestamps back in the machine's time zone and reads offset-less timestamp strings
in it; pyiceberg refuses zoned timestamps other than UTC, and every day boundary here is a UTC
day. `SET TimeZone` is the one way that works without the ICU extension as a connection
setting (passing it in `config=` needs ICU, which cannot be downloaded here).
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import ParamSpec, TypeVar

import duckdb
import pyarrow as pa
from dagster_duckdb import DuckDBResource

from marts_project.core.processes import usable_cores
from marts_project.settings import threads as threads_setting

# A connection that may read only the database it was opened on: no file, network or extension
# access and no way to change that from SQL (what `marts sql` hands an analyst).
LOCKED_DOWN = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


P = ParamSpec("P")
R = TypeVar("R")
# How DuckDB (2.0) reports Ctrl-C during a query: it swallows the interrupt and raises a plain
# RuntimeError with this message once the query stops, so the caller sees an ordinary error.
INTERRUPTED_QUERY = "Query interrupted"


def interrupted_query(error: BaseException | None) -> bool:
    """`error` is DuckDB's report of a query stopped by Ctrl-C (an interrupt, not a failure)."""
    return type(error) is RuntimeError and str(error) == INTERRUPTED_QUERY


def keeps_interrupts(step: Callable[P, R]) -> Callable[P, R]:
    """`step` (a step's body or an IO manager's read or write, a function or a generator) with
    DuckDB's report of Ctrl-C raised as the interrupt it was. Reported as an ordinary error,
    Dagster failed only that step and went on with every step not reading it (28 s of work
    after Ctrl-C at 30 days x 100,000 rows a day); an interrupt stops the run where it is."""
    if inspect.isgeneratorfunction(step):

        @functools.wraps(step)
        def steps(*args: P.args, **kwargs: P.kwargs):
            with _interrupt_kept():
                return (yield from step(*args, **kwargs))

        return steps  # type: ignore[return-value]

    @functools.wraps(step)
    def body(*args: P.args, **kwargs: P.kwargs) -> R:
        with _interrupt_kept():
            return step(*args, **kwargs)

    return body


@contextmanager
def _interrupt_kept() -> Iterator[None]:
    try:
        yield
    except RuntimeError as error:
        if interrupted_query(error):
            raise KeyboardInterrupt(INTERRUPTED_QUERY) from error
        raise


def pin_utc(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    con.execute("set TimeZone = 'UTC'")
    return con


def connect(
    database: str = ":memory:", read_only: bool = False, locked: bool = False
) -> duckdb.DuckDBPyConnection:
    """A UTC connection; `locked` also shuts every door out of the database (see LOCKED_DOWN)."""
    con = _sized(
        pin_utc(duckdb.connect(database, read_only=read_only, config=LOCKED_DOWN if locked else {}))
    )
    if locked:
        con.execute("set lock_configuration = true")
    return con


_IN_MEMORY: dict[int, duckdb.DuckDBPyConnection] = {}  # by process id: never shared over fork
_FILE_LOCKS: dict[tuple[int, str], threading.RLock] = {}
_THREADS: dict[int, int] = {}  # process id -> the threads `use_threads` gave DuckDB and Arrow


def use_threads(count: int | None = None) -> None:
    """Give DuckDB and Arrow `count` threads in this process (None: MARTS_THREADS when set,
    else leave them their default, every core).

    For processes that share a host's cores: `marts backfill --workers N` runs N chunks side by
    side and the Celery workers `marts cluster up` starts run a run each; each process takes
    cores / N. Each on every core made every busy step slower than the cores it won: on 14 days
    at 100,000 rows a day on 2 cores, two chunks side by side took 14-16 s each on every core,
    11.5-12 s each on one (7.5 s alone), and 35.8 against 28.2 s of CPU."""
    count = count or threads_setting()
    if count is None:
        return
    _THREADS[os.getpid()] = count
    pa.set_cpu_count(count)
    if (con := _IN_MEMORY.get(os.getpid())) is not None:
        _sized(con)


@contextmanager
def sharing_cores(count: int) -> Iterator[None]:
    """This process's DuckDB and Arrow at `count` threads within the block, then as before."""
    pid = os.getpid()
    before, arrow_before = _THREADS.get(pid) or threads_setting(), pa.cpu_count()
    use_threads(count)
    try:
        yield
    finally:
        if before is not None:
            use_threads(before)
        else:
            _THREADS.pop(pid, None)
            pa.set_cpu_count(arrow_before)
            if (con := _IN_MEMORY.get(pid)) is not None:
                con.execute("reset threads")


def share_of_cores(processes: int, environ: Mapping[str, str] | None = None) -> int:
    """Threads for each of `processes` processes sharing this host's cores: MARTS_THREADS when
    set (in `environ`, else this process's environment), else the cores divided among them
    (at least one each)."""
    return threads_setting(environ) or max(1, usable_cores() // max(1, processes))


def _sized(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """`con` with this process's thread count (`use_threads`), when one was given."""
    if (count := _THREADS.get(os.getpid())) is not None:
        con.execute(f"set threads = {int(count)}")
    return con


def _process_database() -> duckdb.DuckDBPyConnection:
    """The process's in-memory DuckDB (opening a database costs about 20 ms; a cursor of one
    0.2 ms, and attaching a file to it about 1.5 ms)."""
    pid = os.getpid()
    if pid not in _IN_MEMORY:
        if pid not in _THREADS:
            use_threads()  # an operator's MARTS_THREADS
        _IN_MEMORY[pid] = _sized(duckdb.connect(":memory:"))
    return _IN_MEMORY[pid]


@contextmanager
def _dropped_when_fatal() -> Iterator[None]:
    try:
        yield
    except duckdb.FatalException:
        _IN_MEMORY.pop(os.getpid(), None)
        raise


@contextmanager
def attached(path: str, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A UTC cursor on the database file `path`, attached to the process's in-memory DuckDB and
    in use (unqualified names resolve in it), detached when the block ends.

    The file is locked against other processes exactly as by a connection of its own, from the
    attach to the detach; threads of this process take turns on a file. An unfinished
    transaction is rolled back before the detach. Raises duckdb.IOException when another
    process holds the file. A fatal error (DuckDB then refuses every later query of the
    instance) drops the process's database, so the next use opens a new one.
    """
    key = (os.getpid(), os.path.abspath(path))
    lock = _FILE_LOCKS.setdefault(key, threading.RLock())
    with lock, _dropped_when_fatal():
        cursor = _process_database().cursor()
        alias = f"file_{uuid.uuid4().hex[:16]}"
        quoted = path.replace("'", "''")
        try:
            cursor.execute(f"attach '{quoted}' as {alias}{' (read_only)' if read_only else ''}")
        except BaseException:
            cursor.close()
            raise
        try:
            cursor.execute(f"use {alias}")
            yield pin_utc(cursor)
        finally:
            with suppress(duckdb.TransactionException):  # none was open
                cursor.execute("rollback")
            cursor.execute("use memory")
            cursor.execute(f"detach {alias}")
            cursor.close()


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
                yield _sized(pin_utc(con))
            return
        cursor = _process_database().cursor()
        try:
            yield pin_utc(cursor)
        finally:
            cursor.close()
