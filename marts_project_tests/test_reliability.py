"""What survives: killed writers, concurrent writers, a locked catalog, hostile landing input,
and secrets that must never leak. Figures from these runs are summarised in RELIABILITY.md."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pytest

from marts_project.definitions import build_definitions
from marts_project.planning.planner import facts_of, make_plan, run_requests
from marts_project.raw.sources import source_specs
from marts_project.raw.validation import LandingFileError, parse_landing_file
from marts_project.resources.duck import UtcDuckDB
from marts_project.resources.maintenance import MaintenancePolicy, maintain
from marts_project.settings import Settings
from marts_project.simulator import FAR_FUTURE, renderers
from marts_project_tests.conftest import DAY, SIM

KILL_TRIALS = 6  # the slow-marked variant below runs 50


def _day_rows(day: dt.date, version: int, n: int = 2000) -> pa.Table:
    return pa.table({"d": [day] * n, "k": list(range(n)), "version": [version] * n})


def _assert_whole_versions(table: pa.Table) -> None:
    """Every day holds exactly one complete version of its rows: never a mix, never twice."""
    by_day: dict = {}
    for row in table.select(["d", "k", "version"]).to_pylist():
        by_day.setdefault(row["d"], []).append((row["k"], row["version"]))
    for day, rows in by_day.items():
        versions = {v for _, v in rows}
        assert len(versions) == 1, f"{day} mixes versions {versions}"
        assert sorted(k for k, _ in rows) == list(range(len(rows))), f"{day} lost or doubled rows"


WRITER = """
import datetime as dt, sys
import pyarrow as pa
from marts_project.deployment import open_resource
from marts_project.settings import Settings
w = open_resource(Settings.local(sys.argv[1]), "warehouse")
day = dt.date.fromisoformat(sys.argv[2])
for version in range(1, 1000):
    n = 2000
    data = pa.table({"d": [day] * n, "k": list(range(n)), "version": [version] * n})
    w.overwrite_days("raw.killed", data, "d", day, day + dt.timedelta(days=1))
"""


def _kill_trials(lakehouse, trials: int) -> dict:
    lakehouse.warehouse.overwrite_days(
        "raw.killed", _day_rows(DAY, 0), "d", DAY, DAY + dt.timedelta(days=1)
    )
    rng = random.Random(5)
    for _ in range(trials):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(lakehouse.settings.data_dir), DAY.isoformat()]
        )
        time.sleep(rng.uniform(1.5, 4.0))  # imports take ~1.5 s, then it writes in a loop
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        _assert_whole_versions(lakehouse.warehouse.read("raw.killed"))
    report = maintain(
        lakehouse.warehouse,
        "raw.killed",
        MaintenancePolicy(retain=dt.timedelta(0), keep_last=1, orphan_min_age=dt.timedelta(0)),
    )
    _assert_whole_versions(lakehouse.warehouse.read("raw.killed"))
    return {"trials": trials, "orphans_deleted": report.orphan_files_deleted}


def test_sigkill_during_partition_writes_leaves_a_whole_snapshot(lakehouse):
    result = _kill_trials(lakehouse, KILL_TRIALS)
    assert result["orphans_deleted"] >= 0


@pytest.mark.slow
def test_sigkill_fifty_times(lakehouse):
    _kill_trials(lakehouse, 50)


def _errors_of_concurrent(write, days: list[dt.date]) -> list[Exception]:
    """Run `write(day)` for every day in threads at once; what each raised."""
    errors: list[Exception] = []

    def guarded(day: dt.date) -> None:
        try:
            write(day)
        except Exception as exc:  # noqa: BLE001 - collected and asserted by the caller
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(d,)) for d in days]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_concurrent_writers_on_different_days_lose_no_commit(lakehouse):
    warehouse = lakehouse.warehouse
    days = [DAY + dt.timedelta(days=i) for i in range(6)]
    warehouse.overwrite_days(
        "raw.busy", _day_rows(days[0], 0, 10), "d", days[0], days[0] + dt.timedelta(days=1)
    )

    def write(day: dt.date) -> None:
        warehouse.overwrite_days(
            "raw.busy", _day_rows(day, 1, 500), "d", day, day + dt.timedelta(days=1)
        )

    assert _errors_of_concurrent(write, days) == []
    table = warehouse.read("raw.busy")
    _assert_whole_versions(table)
    assert sorted({r["d"] for r in table.to_pylist()}) == days
    assert table.num_rows == 6 * 500


def test_concurrent_audited_writers_on_different_days_lose_no_commit(lakehouse):
    """Two chunks of one backfill publishing a mart at once: a staged write to an audit branch
    from a table read before the other writer's commit is refused by pyiceberg with a plain
    ValueError (its snapshot's sequence number is taken); that is a lost race, redone."""
    warehouse = lakehouse.warehouse
    days = [DAY + dt.timedelta(days=i) for i in range(4)]
    end = days[0] + dt.timedelta(days=1)
    warehouse.write_audit_publish(
        "marketing.busy", _day_rows(days[0], 0, 10), "d", days[0], end, audit=lambda staged: []
    )

    def write(day: dt.date) -> None:
        for version in (1, 2, 3):
            warehouse.write_audit_publish(
                "marketing.busy",
                _day_rows(day, version, 300),
                "d",
                day,
                day + dt.timedelta(days=1),
                audit=lambda staged: [],
            )

    assert _errors_of_concurrent(write, days) == []
    table = warehouse.read("marketing.busy")
    _assert_whole_versions(table)
    assert {r["version"] for r in table.select(["version"]).to_pylist()} == {3}
    assert table.num_rows == 4 * 300


def test_two_writers_on_the_same_day_never_mix_rows(lakehouse):
    """They serialize: pyiceberg refuses the later commit (ValidationException: the rows it
    meant to replace were replaced meanwhile) and the retry redoes it on top of the winner.
    A writer whose retries run out fails loudly. Either way the day holds one writer's rows,
    whole."""
    from pyiceberg.exceptions import CommitFailedException, ValidationException

    warehouse = lakehouse.warehouse
    end = DAY + dt.timedelta(days=1)
    warehouse.overwrite_days("raw.race", _day_rows(DAY, 0, 10), "d", DAY, end)
    errors = []

    def write(version: int) -> None:
        try:
            warehouse.overwrite_days(
                "raw.race", _day_rows(DAY, version, 700 + version), "d", DAY, end
            )
        except (CommitFailedException, ValidationException) as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(version,)) for version in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    table = warehouse.read("raw.race")
    _assert_whole_versions(table)
    assert len(errors) <= 1
    assert table.num_rows in (701, 702)  # one of the two writers, whole


def test_a_locked_sqlite_catalog_is_waited_out_without_writing_twice(lakehouse):
    warehouse = lakehouse.warehouse
    end = DAY + dt.timedelta(days=1)
    warehouse.overwrite_days("raw.locked", _day_rows(DAY, 0, 10), "d", DAY, end)
    catalog_db = lakehouse.settings.data_dir / "catalog.db"
    blocker = sqlite3.connect(catalog_db, timeout=0, check_same_thread=False)
    blocker.execute("begin exclusive")  # another process holds the catalog

    def release() -> None:
        time.sleep(7)  # longer than SQLite's 5 s busy timeout: the writer sees "locked"
        blocker.rollback()

    threading.Thread(target=release).start()
    started = time.monotonic()
    warehouse.overwrite_days("raw.locked", _day_rows(DAY, 1, 300), "d", DAY, end)
    assert time.monotonic() - started >= 5
    table = warehouse.read("raw.locked")
    _assert_whole_versions(table)
    assert table.num_rows == 300
    blocker.close()


def _hostile_corpus() -> list[tuple[str, bytes]]:
    """More than 200 broken variants of real landing files, generated deterministically."""
    cases: list[tuple[str, bytes]] = []
    for source, render in renderers().items():
        good = render(SIM, DAY, FAR_FUTURE)
        lines = good.splitlines(keepends=True)
        header = lines[0].decode().strip().split(",")
        for cut in (1, 7, len(good) // 3, len(good) // 2, len(good) - 3):
            cases.append((f"{source}: truncated at byte {cut}", good[:cut]))
        cases.append((f"{source}: empty", b""))
        cases.append((f"{source}: header only", lines[0]))
        cases.append((f"{source}: latin-1", good.replace(b"a", "\xe4".encode("latin-1"))))
        cases.append((f"{source}: NUL bytes", good.replace(b",", b"\x00,", 3)))
        cases.append(
            (f"{source}: huge line", lines[0] + b"x" * 2_000_000 + b"\n" + b"".join(lines[1:]))
        )
        cases.append((f"{source}: duplicated rows", lines[0] + b"".join(lines[1:]) * 2))
        cases.append((f"{source}: CRLF", good.replace(b"\n", b"\r\n")))
        cases.append((f"{source}: BOM", b"\xef\xbb\xbf" + good))
        for index, column in enumerate(header):
            cut_out = [
                ",".join(v for i, v in enumerate(row) if i != index)
                for row in csv.reader(io.StringIO(good.decode()))
            ]
            cases.append((f"{source}: without {column}", ("\n".join(cut_out) + "\n").encode()))
            for bad in ("", "NULL", "not-a-value", "9" * 40, "2026-13-45"):
                rows = list(csv.reader(io.StringIO(good.decode())))
                for row in rows[1:3]:
                    row[index] = bad
                buffer = io.StringIO()
                csv.writer(buffer, lineterminator="\n").writerows(rows)
                cases.append((f"{source}: {column}={bad!r}", buffer.getvalue().encode()))
        extra = [line.rstrip(b"\n") + b",extra\n" for line in lines]
        cases.append((f"{source}: extra column", b"".join(extra)))
        shifted = good.replace(DAY.isoformat().encode(), b"2026-10-09")
        cases.append((f"{source}: dates outside the file's day", shifted))
    return cases


CORPUS = _hostile_corpus()


def test_the_hostile_corpus_is_large():
    assert len(CORPUS) >= 200


@pytest.mark.parametrize("name,payload", CORPUS, ids=[name for name, _ in CORPUS])
def test_hostile_input_is_quarantined_or_refused_never_lost(name, payload):
    source = name.split(":")[0]
    spec = source_specs()[source]
    try:
        parsed = parse_landing_file(
            payload, spec, DAY, f"{source}/{DAY}.csv", UtcDuckDB(database=":memory:")
        )
    except LandingFileError as exc:
        assert str(exc)  # refused, with a message saying why
        return
    assert parsed.rows_in == parsed.valid.num_rows + parsed.quarantine.num_rows
    assert all(parsed.quarantine.column("reason").to_pylist())


@pytest.mark.parametrize(
    "key",
    [
        "../etc/2026-10-05.csv",
        "mkt_ad_stats/../../x/2026-10-05.csv",
        "mkt_ad_stats/2026-10-05.csv.exe",
        "mkt_ad_stats/2026-02-30.csv",
        "MKT_AD_STATS/2026-10-05.csv",
        "mkt_ad_stats/ 2026-10-05.csv",
        "unknown_source/2026-10-05.csv",
        "mkt_ad_stats/2026-10-05.csv/../../../passwd",
    ],
)
def test_hostile_landing_file_names_are_never_requested(key, tmp_path):
    facts = facts_of(build_definitions(Settings.local(tmp_path)).assets)
    plan = make_plan(facts, {}, {key: "1:1:"})
    assert plan.stale == [] and run_requests(plan, facts) == []


def test_s3_credentials_never_reach_logs_or_metadata(s3_lakehouse, monkeypatch):
    secret = "s3cr3t-" + "".join(itertools.islice(itertools.cycle("zq9x"), 24))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)  # moto accepts any secret
    s3_lakehouse.seed(DAY, 1)
    s3_lakehouse.run(DAY)
    instance = s3_lakehouse.instance
    for run in instance.get_runs():
        assert secret not in str(run.run_config) and secret not in str(run.tags)
        for event in instance.all_logs(run.run_id):
            assert secret not in str(event), event


def test_a_lost_commit_race_is_tried_longer_than_an_io_error(monkeypatch):
    """Several runs committing to one table at once (a cluster) lose races for a while: that
    is retried up to CONFLICT_ATTEMPTS; a failing store still gives up after ATTEMPTS."""
    from pyiceberg.exceptions import CommitFailedException

    from marts_project.resources import retry

    monkeypatch.setattr(retry.time, "sleep", lambda seconds: None)
    races = iter(range(retry.CONFLICT_ATTEMPTS - 2))

    def commit() -> str:
        if next(races, None) is not None:
            raise CommitFailedException("table metadata changed")
        return "committed"

    assert retry.with_retries(commit, "commit") == "committed"
    calls = []

    def broken_store() -> None:
        calls.append(1)
        raise ConnectionError("connection reset by peer")

    with pytest.raises(ConnectionError):
        retry.with_retries(broken_store, "write")
    assert len(calls) == retry.ATTEMPTS
