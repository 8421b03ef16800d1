"""Benchmarks: every figure measured side by side in one run, at production volume, printed as
ratios and written to BENCHMARKS.md with the machine description. Not a test: never part of
the test suite.

Commands are timed as users run them: `marts` in a subprocess on the data folder's persistent
embedded instance, each with its own peak RSS; the backfill figure comes with a breakdown of
where its time went (`bench/phases.py`). The floor parses each landing file once into DuckDB
and computes every mart from those tables (`bench/floor.py`).

    .venv/bin/python -m bench.run [--rows-per-day 100000] [--days 30] [--history 90]
                                  [--commits 1000] [--unmaintained-commits 300] [--no-peer]
    .venv/bin/python -m bench.run --quick     # smoke run: small volume, a few minutes
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
from dagster import AssetKey, DagsterInstance

from bench.common import END, ROOT, days_before, marts, seed, timed_command
from bench.phases import phases
from bench.phases import render as render_phases
from marts_project.deployment import open_resource
from marts_project.resources.maintenance import MaintenancePolicy, maintain
from marts_project.settings import Settings
from marts_project.simulator import SimConfig

FACT = AssetKey(["marketing", "mkt_campaign_performance_fact"])


def backfill(folder: Path, start: dt.date, end: dt.date, *options: str) -> tuple[float, float]:
    """`marts backfill` of [start, end]: wall seconds and peak RSS (GB)."""
    return marts(folder, "backfill", "--start", str(start), "--end", str(end), *options)


def floor(folder: Path, days: list[dt.date], out: Path, only: str | None = None) -> dict:
    """The floor in its own process: seconds of its DuckDB work and its peak RSS (GB)."""
    argv = ["-m", "bench.floor", str(folder), str(days[0]), str(days[-1]), str(out)]
    _, peak = timed_command(folder, sys.executable, *argv, *([only] if only else []))
    return {"seconds": float((out / "seconds").read_text()), "peak_gb": peak}


def figure_backfill(tmp: Path, cfg: SimConfig, ndays: int) -> dict:
    """A backfill of the whole graph against the floor, on the same landing files."""
    days = days_before(END, ndays)
    folder = tmp / "backfill"
    landing_mb = seed(folder, days, cfg)
    low = floor(folder, days, tmp / "floor")
    seconds, peak = backfill(folder, days[0], days[-1])  # as users run it: chunks per core
    one = tmp / "backfill-one-process"  # the same files, a fresh lake and instance
    one.mkdir()
    (one / "landing").symlink_to(folder / "landing")
    one_s, one_peak = backfill(one, days[0], days[-1], "--workers", "1")
    return {
        "days": ndays,
        "landing_mb": landing_mb,
        "floor_s": low["seconds"],
        "floor_peak_gb": low["peak_gb"],
        "marts_s": seconds,
        "marts_peak_gb": peak,
        "ratio": seconds / low["seconds"],
        "one_process_s": one_s,
        "one_process_peak_gb": one_peak,
        "phases": phases(one / "dagster_home", one_s),  # one process: its steps never overlap
        "folder": folder,
    }


PEER_ROWS, PEER_DAYS = 50_000, 28  # the volume the dbt-duckdb peer is compared at
SELECT_FACT = ("--select", f"+{FACT.path[-1]}")  # the fact and every table it is built from


def figure_peer(tmp: Path) -> dict:
    """The marketing performance fact and its lineage alone, on the same landing files: `marts
    backfill --select +mkt_campaign_performance_fact` vs the dbt-duckdb incremental peer's
    `dbt run`, both timed as processes, for the whole range and then a one-day refresh."""
    from bench.peers import dbt

    dbt.ensure_installed()  # not timed: a one-off install
    days = days_before(END, PEER_DAYS)
    folder = tmp / "peer"
    seed(folder, days, SimConfig(seed=1, rows_per_day=PEER_ROWS))
    peer_db = folder / "peer.duckdb"
    marts_s, marts_gb = backfill(folder, days[0], days[-1], *SELECT_FACT)
    result = {
        "floor_s": floor(folder, days, tmp / "peer-floor", only=FACT.to_user_string())["seconds"],
        "marts_s": marts_s,
        "marts_peak_gb": marts_gb,
        "dbt_s": dbt.run(folder / "landing", peer_db, days[0], days[-1]),
    }
    one_day = [backfill(folder, END, END, *SELECT_FACT) for _ in range(3)]
    result["marts_day_s"] = statistics.median(s for s, _ in one_day)
    result["dbt_day_s"] = statistics.median(
        dbt.run(folder / "landing", peer_db, END, END) for _ in range(3)
    )
    return result


DEMO_ROWS, DEMO_HISTORY = 200, 8  # `marts demo`'s volume, and a week of history before the day


def figure_demo_refresh(tmp: Path) -> dict:
    """A one-day refresh at demo size (`marts backfill --start D --end D`, median of 3) after
    a week of history: what an operator waits for after fixing one day."""
    days = days_before(END, DEMO_HISTORY)
    folder = tmp / "demo-refresh"
    seed(folder, days, SimConfig(seed=7, rows_per_day=DEMO_ROWS))
    backfill(folder, days[0], days[-2])
    return refreshes(folder)


LARGE_FILE_MB, LARGE_FILE_SOURCE = 314, "shop_orders"


def figure_large_file(tmp: Path) -> dict:
    """Peak RSS of `marts backfill` of one day (every layer, the CLI) whose largest landing
    file is LARGE_FILE_MB, against the file's size (`bench/landing.py` makes the file)."""
    from bench.landing import DAY, make_file

    folder = tmp / "large-file"
    size = make_file(folder, LARGE_FILE_SOURCE, LARGE_FILE_MB)
    seconds, peak = backfill(folder, DAY, DAY)
    return {"file_mb": size, "seconds": seconds, "peak_gb": peak}


def refreshes(folder: Path, repeat: int = 3) -> dict:
    """A one-day refresh of the last day (median of `repeat`) and its highest peak RSS."""
    runs = [backfill(folder, END, END) for _ in range(repeat)]
    return {
        "seconds": statistics.median(s for s, _ in runs),
        "peak_gb": max(p for _, p in runs),
    }


def figure_history(tmp: Path, cfg: SimConfig, history: int) -> dict:
    """A one-day refresh after `history` days of backfilled history against after 7: what a
    refresh costs must not grow with the table. Building the whole history is also what a
    naive full refresh does after any change."""
    results = {}
    for label, ndays in (("short", 7), ("long", history)):
        days = days_before(END, ndays)
        folder = tmp / f"history-{ndays}"
        seed(folder, days, cfg)
        full, _ = backfill(folder, days[0], days[-1])
        results[label] = {"history_days": ndays, "full_refresh_s": full, **refreshes(folder)}
    results["ratio"] = results["long"]["seconds"] / results["short"]["seconds"]
    results["rss_ratio"] = results["long"]["peak_gb"] / results["short"]["peak_gb"]
    return results


def figure_rolling(fig1: dict) -> dict:
    """On figure 1's backfilled range: the nightly 7-day reprocess against a one-day refresh."""
    one = refreshes(fig1["folder"])
    week = [backfill(fig1["folder"], END - dt.timedelta(days=6), END) for _ in range(2)]
    seven = statistics.median(s for s, _ in week)
    return {
        "one_day_s": one["seconds"],
        "seven_days_s": seven,
        "ratio": seven / one["seconds"],
        "peak_gb": max([one["peak_gb"], *(p for _, p in week)]),
    }


def figure_overhead() -> dict:
    """Run start-up and per-step cost: the same 2-step job in process and in subprocesses."""
    from dagster import execute_job, reconstructable

    from bench import overhead

    results = {}
    with tempfile.TemporaryDirectory() as home, DagsterInstance.local_temp(home) as instance:
        for label, job in (
            ("in_process", overhead.in_process_job),
            ("multiprocess", overhead.multiprocess_job),
        ):
            samples = []
            for _ in range(4):
                started = time.perf_counter()
                quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
                with execute_job(
                    reconstructable(job), instance=instance, run_config=quiet
                ) as result:
                    assert result.success
                samples.append(time.perf_counter() - started)
            results[label] = statistics.median(samples[1:])  # the first run warms imports
    return results


# Overwrites cycle over a month of days, as nightly and monthly reprocessing do: what grows is
# the snapshot history maintenance expires, not the number of partitions holding data.
ROTATING_DAYS = 30


def figure_metadata(tmp: Path, commits: int, unmaintained: int) -> dict:
    """Commit time after `commits` partition overwrites with maintenance, and after
    `unmaintained` without it (pyiceberg's cost per commit grows with every snapshot kept, so
    1,000 unmaintained commits take the better part of an hour)."""
    results = {}
    for label, every, count in (
        ("without_maintenance", None, unmaintained),
        ("with_maintenance", 50, commits),
    ):
        settings = Settings.local(tmp / f"meta-{label}")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        warehouse = open_resource(settings, "warehouse")
        policy = MaintenancePolicy(
            retain=dt.timedelta(0), keep_last=5, orphan_min_age=dt.timedelta(0)
        )
        start = dt.date(2024, 1, 1)
        samples = []
        for i in range(count):
            day = start + dt.timedelta(days=i % ROTATING_DAYS)
            data = pa.table({"d": [day] * 10, "v": list(range(10))})
            started = time.perf_counter()
            warehouse.overwrite_days("bench.t", data, "d", day, day + dt.timedelta(days=1))
            seconds = time.perf_counter() - started
            samples.append(seconds)
            if every and (i + 1) % every == 0:
                maintain(warehouse, "bench.t", policy)
        results[label] = {
            "commits": count,
            "first_10_ms": 1000 * statistics.median(samples[:10]),
            "last_10_ms": 1000 * statistics.median(samples[-10:]),
        }
        results[label]["growth"] = results[label]["last_10_ms"] / results[label]["first_10_ms"]
    return results


def keep(result: dict) -> dict:
    """Print a figure's raw numbers as soon as it is measured (a cut-off run keeps them)."""
    print(f"    {result}", flush=True)
    return result


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows-per-day", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30, help="range of the backfill figure")
    parser.add_argument("--history", type=int, default=90, help="history of figure 2")
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--unmaintained-commits", type=int, default=300)
    parser.add_argument("--no-peer", action="store_true", help="skip the dbt-duckdb peer")
    parser.add_argument("--quick", action="store_true", help="smoke run at a small volume")
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()
    if args.quick:
        args.rows_per_day, args.days, args.history = 1_000, 7, 14
        args.commits, args.unmaintained_commits, args.no_peer = 100, 50, True
    cfg = SimConfig(seed=1, rows_per_day=args.rows_per_day)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="marts-bench-") as folder:
        tmp = Path(folder)
        fig1 = keep(figure_backfill(tmp, cfg, args.days))
        print(
            f"(1) {args.days}-day backfill: marts {fig1['marts_s']:.1f}s "
            f"(peak {fig1['marts_peak_gb']:.2f} GB), floor {fig1['floor_s']:.1f}s "
            f"(peak {fig1['floor_peak_gb']:.2f} GB), ratio {fig1['ratio']:.2f}; in one process "
            f"{fig1['one_process_s']:.1f}s (peak {fig1['one_process_peak_gb']:.2f} GB)",
            flush=True,
        )
        peer = None if args.no_peer else keep(figure_peer(tmp))
        demo = keep(figure_demo_refresh(tmp))
        print(f"(6) one-day refresh at demo size: {demo['seconds']:.2f} s", flush=True)
        large = keep(figure_large_file(tmp))
        fig3 = keep(figure_rolling(fig1))
        print(f"(3) 7-day reprocess vs one day: ratio {fig3['ratio']:.2f}", flush=True)
        fig2 = keep(figure_history(tmp, cfg, args.history))
        print(
            f"(2) one-day refresh, {args.history} vs 7 days of history: ratio "
            f"{fig2['ratio']:.2f} (time), {fig2['rss_ratio']:.2f} (peak RSS)",
            flush=True,
        )
        fig4 = keep(figure_overhead())
        fig5 = keep(figure_metadata(tmp, args.commits, args.unmaintained_commits))
        total = time.perf_counter() - began
        figures = render(args, fig1, peer, fig2, fig3, fig4, fig5, demo, large, total)
    if args.quick:
        print(figures)
    else:
        write_results(Path(args.out), figures)
        print(f"wrote {args.out} ({total:.0f}s)")
    return 0


BEGIN, END_MARK = "<!-- bench:begin -->", "<!-- bench:end -->"


def write_results(path: Path, table: str) -> None:
    """Replace the generated part of BENCHMARKS.md; the hand-written analysis around it stays."""
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END_MARK}\n"
    if BEGIN not in text:
        text = f"{text.rstrip()}\n\n{BEGIN}\n{END_MARK}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END_MARK, 1)[1]
    path.write_text(f"{head}{BEGIN}\n{table}{END_MARK}{tail}")


def render(args, fig1, peer, fig2, fig3, fig4, fig5, demo, large, total) -> str:
    w, wo = fig5["with_maintenance"], fig5["without_maintenance"]
    long, short = fig2["long"], fig2["short"]
    ndays, mb, wall = fig1["days"], fig1["landing_mb"], fig1["one_process_s"]
    rows = [
        f"| 1 | {ndays}-day backfill of the whole graph (35 tables, 81 checks), `marts backfill` "
        f"on a persistent instance, {mb:,.0f} MB of landing CSV (daily chunks side by side, "
        "one per core: the default for a range larger than one run; peak: the sum over the "
        "process tree), vs the floor (each landing file parsed once into DuckDB on every core, "
        f"every mart computed from those tables, written to Parquet) | marts "
        f"{fig1['marts_s']:.1f} s, peak {fig1['marts_peak_gb']:.2f} GB; floor "
        f"{fig1['floor_s']:.1f} s, peak {fig1['floor_peak_gb']:.2f} GB | {fig1['ratio']:.2f} "
        "| <= 3.0 |",
        "| 1a | the same backfill in one process (`--workers 1`) | marts "
        f"{wall:.1f} s, peak {fig1['one_process_peak_gb']:.2f} GB | {wall / fig1['floor_s']:.2f} "
        "| |",
    ]
    if peer:
        rows += [
            f"| 1b | the marketing performance fact and its lineage, {PEER_DAYS}-day backfill at "
            f"{PEER_ROWS:,} ad rows a day: `marts backfill --select +{FACT.path[-1]}` (raw, "
            "staging, intermediate, fact, checks, Iceberg, audits) vs the dbt-duckdb incremental "
            "peer (`bench/peers/`, delete+insert by day), both timed as processes on the same "
            f"files, and the floor | marts {peer['marts_s']:.1f} s (peak "
            f"{peer['marts_peak_gb']:.2f} GB), dbt-duckdb {peer['dbt_s']:.1f} s, floor "
            f"{peer['floor_s']:.1f} s | {peer['marts_s'] / peer['dbt_s']:.2f} vs peer, "
            f"{peer['marts_s'] / peer['floor_s']:.2f} vs floor | <= 1.0 vs peer |",
            "| 1c | the same lineage, one-day refresh on top of that backfill (median of 3) | "
            f"marts {peer['marts_day_s']:.2f} s, dbt-duckdb {peer['dbt_day_s']:.2f} s | "
            f"{peer['marts_day_s'] / peer['dbt_day_s']:.2f} vs peer | <= 1.0 vs peer |",
        ]
    rows += [
        f"| 2 | one-day refresh (`marts backfill` of one day, median of 3) with {args.history} "
        f"days of history vs with 7 | {long['seconds']:.2f} s vs {short['seconds']:.2f} s; "
        f"peak {long['peak_gb']:.2f} vs {short['peak_gb']:.2f} GB | {fig2['ratio']:.2f} (time), "
        f"{fig2['rss_ratio']:.2f} (RSS) | <= 1.2 |",
        f"| 2b | naive full refresh (rebuild all {args.history} days) vs the one-day refresh | "
        f"{long['full_refresh_s']:.1f} s vs {long['seconds']:.2f} s | "
        f"{long['full_refresh_s'] / long['seconds']:.1f} | |",
        f"| 3 | 7-day reprocess (median of 2) vs one-day refresh (median of 3), on figure 1's "
        f"range | {fig3['seven_days_s']:.2f} s vs {fig3['one_day_s']:.2f} s; peak "
        f"{fig3['peak_gb']:.2f} GB | {fig3['ratio']:.2f} | <= 1.5 |",
        "| 4 | Dagster overhead: a 2-step run, in-process vs multiprocess executor (median of 3) "
        f"| {fig4['in_process']:.2f} s vs {fig4['multiprocess']:.2f} s | "
        f"{fig4['multiprocess'] / fig4['in_process']:.1f} | |",
        f"| 5 | commit time, first 10 vs last 10 partition overwrites (cycling over "
        f"{ROTATING_DAYS} days) | without maintenance, {wo['commits']} overwrites: "
        f"{wo['first_10_ms']:.0f} -> {wo['last_10_ms']:.0f} ms; with maintenance every 50 "
        f"commits, {w['commits']} overwrites: {w['first_10_ms']:.0f} -> "
        f"{w['last_10_ms']:.0f} ms | {wo['growth']:.2f}x vs {w['growth']:.2f}x | flat with "
        "maintenance |",
        f"| 6 | one-day refresh at demo size ({DEMO_ROWS} ad rows a day, {DEMO_HISTORY - 1} days "
        f"of history; `marts backfill --start D --end D`, median of 3) | {demo['seconds']:.2f} s, "
        f"peak {demo['peak_gb']:.2f} GB | | <= 6 s |",
        f"| 7 | one day whose largest landing file is {large['file_mb']:.0f} MB "
        f"({LARGE_FILE_SOURCE}), `marts backfill` of that day through every layer | "
        f"{large['seconds']:.1f} s, peak {large['peak_gb']:.2f} GB | "
        f"{large['peak_gb'] * 1000 / large['file_mb']:.1f}x the file | <= 1.2 GB |",
    ]
    breakdown = fig1["phases"]
    return f"""One run of `python -m bench.run --rows-per-day {args.rows_per_day} --days {ndays}
--history {args.history} --commits {args.commits} --unmaintained-commits
{args.unmaintained_commits}` on {machine()}, {dt.date.today()}; the
whole run took {total:.0f} s. Every ratio compares two measurements taken in that same run;
`marts` commands ran as users run them (the CLI in a subprocess, persistent instance).

| # | figure | measured | ratio | goal |
| --- | --- | --- | --- | --- |
{chr(10).join(rows)}

Where figure 1a's {wall:.1f} s went, in one process ({breakdown["runs"]} runs, {breakdown["events"]:,} Dagster
events stored; from each step's start and end and the seconds each materialization reports):

| phase | seconds | share |
| --- | --- | --- |
{render_phases(breakdown, wall)}
"""


if __name__ == "__main__":
    sys.exit(main())
