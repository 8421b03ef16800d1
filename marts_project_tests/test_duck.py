"""A database file attached to the process's DuckDB behaves like a connection of its own: its
writes are on disk when the block ends, the file is free for others after it, threads of the
process take turns on it, and an unfinished transaction is rolled back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import duckdb
import pytest

from marts_project.core.processes import usable_cores
from marts_project.resources.duck import attached, share_of_cores
from marts_project.settings import SettingError

pytestmark = pytest.mark.quick  # the unit tier: `pytest -m quick`

OTHER_PROCESS = """
import sys, duckdb
with duckdb.connect(sys.argv[1]) as con:
    print(con.execute("select count(*) from t").fetchone()[0])
"""


def test_writes_are_in_the_file_and_the_file_is_free_when_the_block_ends(tmp_path):
    path = str(tmp_path / "it's.duckdb")  # a quote in the path, too
    with attached(path) as con:
        con.execute("create table t as select range as n from range(10)")
        assert con.execute("select current_setting('TimeZone')").fetchone()[0] == "UTC"
    out = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, path], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "10"


def test_threads_take_turns_on_one_file(tmp_path):
    path = str(tmp_path / "shared.duckdb")
    with attached(path) as con:
        con.execute("create table t (n integer)")
    errors: list[BaseException] = []

    def insert(n: int) -> None:
        try:
            for _ in range(5):
                with attached(path) as con:
                    con.execute("insert into t values (?)", [n])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=insert, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with attached(path, read_only=True) as con:
        assert con.execute("select count(*) from t").fetchone()[0] == 20


def test_an_unfinished_transaction_is_rolled_back(tmp_path):
    path = str(tmp_path / "tx.duckdb")
    with attached(path) as con:
        con.execute("create table t (n integer)")
    with pytest.raises(RuntimeError), attached(path) as con:
        con.execute("begin transaction")
        con.execute("insert into t values (1)")
        raise RuntimeError("the step failed half-way")
    with attached(path, read_only=True) as con:
        assert con.execute("select count(*) from t").fetchone()[0] == 0


def test_a_file_another_process_writes_is_refused_with_an_io_error(tmp_path):
    path = str(tmp_path / "held.duckdb")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, duckdb, time; c = duckdb.connect(sys.argv[1]); "
            "c.execute('create table t (n int)'); print('ready', flush=True); time.sleep(30)",
            path,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(duckdb.IOException, match="(?i)lock"), attached(path):
            pass
    finally:
        holder.kill()
        holder.wait()


SHARE = """
import os, sys
import duckdb, pyarrow as pa
from marts_project.resources.duck import UtcDuckDB, connect, sharing_cores

def threads():
    with UtcDuckDB(database=":memory:").get_connection() as con:
        process = con.execute("select current_setting('threads')").fetchone()[0]
    own = connect().execute("select current_setting('threads')").fetchone()[0]
    return [process, own, pa.cpu_count()]

print(threads())
with sharing_cores(1):
    print(threads())
print(threads())
"""


def _threads_seen(env: dict[str, str]) -> list[list[int]]:
    """DuckDB's (the process's database, a connection of its own) and Arrow's threads in a
    fresh process: at its start, within `sharing_cores(1)`, after it."""
    env = {k: v for k, v in os.environ.items() if k != "MARTS_THREADS"} | env
    out = subprocess.run(
        [sys.executable, "-c", SHARE], capture_output=True, text=True, check=True, env=env
    )
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_processes_sharing_the_cores_take_their_share_and_give_it_back():
    cores = os.cpu_count() or 1
    assert _threads_seen({}) == [[cores] * 3, [1, 1, 1], [cores] * 3]
    assert _threads_seen({"MARTS_THREADS": "3"}) == [[3] * 3, [1, 1, 1], [3] * 3]


def test_a_share_of_the_cores_is_the_operators_or_the_cores_divided():
    cores = usable_cores()
    assert share_of_cores(1, {}) == cores
    assert share_of_cores(cores * 4, {}) == 1  # never none
    assert share_of_cores(2, {"MARTS_THREADS": "3"}) == 3
    with pytest.raises(SettingError, match="MARTS_THREADS"):
        share_of_cores(2, {"MARTS_THREADS": "0"})
