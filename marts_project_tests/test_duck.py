"""A database file attached to the process's DuckDB behaves like a connection of its own: its
writes are on disk when the block ends, the file is free for others after it, threads of the
process take turns on it, and an unfinished transaction is rolled back."""

from __future__ import annotations

import subprocess
import sys
import threading

import duckdb
import pytest

from marts_project.resources.duck import attached

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
