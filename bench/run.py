"""Benchmarks: every figure measured side by side in one run, printed as ratios and written to
BENCHMARKS.md with the machine description. Not a test: never part of the test suite.

    .venv/bin/python -m bench.run [--rows-per-day 100] [--days 90] [--history 365] [--commits 300]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
from dagster import (
    DagsterInstance,
)

from marts_project.definitions import build_definitions, open_resource
from marts_project.maintenance import MaintenancePolicy, maintain
from marts_project.runs import refresh_days
from marts_project.settings import Settings
from marts_project.simulator import FAR_FUTURE, SimConfig, land

ROOT = Path(__file__).resolve().parents[1]
END = dt.date(2026, 10, 31)


def days_before(end: dt.date, count: int) -> list[dt.date]:
    return [end - dt.timedelta(days=i) for i in reversed(range(count))]


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def lake(folder: Path, days: list[dt.date], cfg: SimConfig) -> Settings:
    settings = Settings.local(folder)
    land(open_resource(settings, "landing"), days, FAR_FUTURE, cfg)
    return settings


def backfill(settings: Settings, start: dt.date, end: dt.date) -> float:
    with DagsterInstance.ephemeral() as instance:
        defs = build_definitions(settings)
        seconds = timed(lambda: _ok(refresh_days(defs, instance, start, end)))
    return seconds


def _ok(outcomes) -> None:
    failed = [o.job_name for o in outcomes if not o.success]
    if failed:
        raise RuntimeError(f"benchmark run failed: {failed}")


def floor(settings: Settings, days: list[dt.date], out: Path) -> float:
    """DuckDB straight from the landing files to Parquet: the same marts, no orchestration,
    no Iceberg (the queries are the test suite's independent definitions)."""
    sys.path.insert(0, str(ROOT))
    from marts_project_tests.expected import EXPECTED, landing_connection

    out.mkdir(parents=True, exist_ok=True)

    def run() -> None:
        con = landing_connection(open_resource(settings, "landing"), days, out / "copy")
        for name, (_, sql) in EXPECTED.items():
            con.execute(f"copy ({sql}) to '{out / name}.parquet' (format parquet)")

    return timed(run)


def figure_backfill(tmp: Path, cfg: SimConfig, ndays: int) -> dict:
    days = days_before(END, ndays)
    settings = lake(tmp / "backfill", days, cfg)
    floor_s = floor(settings, days, tmp / "floor")
    marts_s = backfill(settings, days[0], days[-1])
    return {"days": ndays, "floor_s": floor_s, "marts_s": marts_s, "ratio": marts_s / floor_s}


def figure_history(tmp: Path, cfg: SimConfig, history: int) -> dict:
    results = {}
    for label, ndays in (("short", 7), ("long", history)):
        days = days_before(END, ndays)
        settings = lake(tmp / f"history-{ndays}", days, cfg)
        backfill(settings, days[0], days[-1])
        code = (
            "import datetime as dt,resource,sys,time;"
            "from dagster import DagsterInstance;"
            "from marts_project.definitions import build_definitions;"
            "from marts_project.runs import refresh_days;"
            "from marts_project.settings import Settings;"
            f"s=Settings.local('{tmp / f'history-{ndays}'}');d=dt.date.fromisoformat('{END}');"
            "i=DagsterInstance.ephemeral();defs=build_definitions(s);"
            "t=time.perf_counter();o=refresh_days(defs,i,d,d);t=time.perf_counter()-t;"
            "assert all(x.success for x in o);"
            "print(t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        )
        runs = [
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
            ).stdout.split()
            for _ in range(3)
        ]
        results[label] = {
            "history_days": ndays,
            "seconds": statistics.median(float(r[0]) for r in runs),
            "peak_rss_mb": max(int(r[1]) for r in runs) / 1024,
        }
    results["ratio"] = results["long"]["seconds"] / results["short"]["seconds"]
    results["rss_ratio"] = results["long"]["peak_rss_mb"] / results["short"]["peak_rss_mb"]
    return results


def figure_rolling(tmp: Path, cfg: SimConfig) -> dict:
    days = days_before(END, 30)
    settings = lake(tmp / "rolling", days, cfg)
    backfill(settings, days[0], days[-1])
    one = statistics.median(backfill(settings, END, END) for _ in range(3))
    seven = statistics.median(backfill(settings, days[-7], END) for _ in range(3))
    return {"one_day_s": one, "seven_days_s": seven, "ratio": seven / one}


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


def figure_metadata(tmp: Path, commits: int) -> dict:
    """Commit time after `commits` partition overwrites, without and with maintenance."""
    results = {}
    for label, every in (("without_maintenance", None), ("with_maintenance", 50)):
        settings = Settings.local(tmp / f"meta-{label}")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        warehouse = open_resource(settings, "warehouse")
        policy = MaintenancePolicy(
            retain=dt.timedelta(0), keep_last=5, orphan_min_age=dt.timedelta(0)
        )
        start = dt.date(2024, 1, 1)
        samples = []
        for i in range(commits):
            day = start + dt.timedelta(days=i % 365)
            data = pa.table({"d": [day] * 10, "v": list(range(10))})
            started = time.perf_counter()
            warehouse.overwrite_days("bench.t", data, "d", day, day + dt.timedelta(days=1))
            seconds = time.perf_counter() - started
            samples.append(seconds)
            if every and (i + 1) % every == 0:
                maintain(warehouse, "bench.t", policy)
        results[label] = {
            "first_10_ms": 1000 * statistics.median(samples[:10]),
            "last_10_ms": 1000 * statistics.median(samples[-10:]),
        }
        results[label]["growth"] = results[label]["last_10_ms"] / results[label]["first_10_ms"]
    return results


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows-per-day", type=int, default=100)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--history", type=int, default=365)
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()
    cfg = SimConfig(seed=1, rows_per_day=args.rows_per_day)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="marts-bench-") as folder:
        tmp = Path(folder)
        fig1 = figure_backfill(tmp, cfg, args.days)
        print(
            f"(1) {args.days}-day backfill: marts {fig1['marts_s']:.1f}s, floor "
            f"{fig1['floor_s']:.1f}s, ratio {fig1['ratio']:.2f}",
            flush=True,
        )
        fig2 = figure_history(tmp, cfg, args.history)
        print(
            f"(2) one-day refresh, {args.history} vs 7 days of history: ratio "
            f"{fig2['ratio']:.2f} (time), {fig2['rss_ratio']:.2f} (peak RSS)",
            flush=True,
        )
        fig3 = figure_rolling(tmp, cfg)
        print(f"(3) 7-day reprocess vs one day: ratio {fig3['ratio']:.2f}", flush=True)
        fig4 = figure_overhead()
        print(
            f"(4) 2-step run: in-process {fig4['in_process']:.2f}s, multiprocess "
            f"{fig4['multiprocess']:.2f}s",
            flush=True,
        )
        fig5 = figure_metadata(tmp, args.commits)
        print(
            f"(5) commit after {args.commits} overwrites: growth without maintenance "
            f"{fig5['without_maintenance']['growth']:.2f}x, with "
            f"{fig5['with_maintenance']['growth']:.2f}x",
            flush=True,
        )
    total = time.perf_counter() - began
    Path(args.out).write_text(render(args, fig1, fig2, fig3, fig4, fig5, total))
    print(f"wrote {args.out} ({total:.0f}s)")
    return 0


def render(args, fig1, fig2, fig3, fig4, fig5, total) -> str:
    w, wo = fig5["with_maintenance"], fig5["without_maintenance"]
    return f"""# Benchmarks

One run of `python -m bench.run --rows-per-day {args.rows_per_day} --days {args.days}
--history {args.history} --commits {args.commits}` on {machine()}, {dt.date.today()}; the
whole run took {total:.0f} s. Every ratio compares two measurements taken in that same run.

| # | figure | measured | ratio | goal |
| --- | --- | --- | --- | --- |
| 1 | {args.days}-day backfill of the whole graph vs the floor (DuckDB straight from the landing files to Parquet, no orchestration, no Iceberg) | marts {fig1["marts_s"]:.1f} s, floor {fig1["floor_s"]:.1f} s | {fig1["ratio"]:.2f} | <= 2.0 |
| 2 | one-day refresh with {args.history} days of history vs with 7 (median of 3, each in a fresh process) | {fig2["long"]["seconds"]:.2f} s vs {fig2["short"]["seconds"]:.2f} s; peak RSS {fig2["long"]["peak_rss_mb"]:.0f} vs {fig2["short"]["peak_rss_mb"]:.0f} MB | {fig2["ratio"]:.2f} (time), {fig2["rss_ratio"]:.2f} (RSS) | <= 1.2 |
| 3 | 7-day rolling reprocess vs one-day refresh (median of 3) | {fig3["seven_days_s"]:.2f} s vs {fig3["one_day_s"]:.2f} s | {fig3["ratio"]:.2f} | <= 2.0 |
| 4 | Dagster overhead: a 2-step run, in-process vs multiprocess executor (median of 3) | {fig4["in_process"]:.2f} s vs {fig4["multiprocess"]:.2f} s | {fig4["multiprocess"] / fig4["in_process"]:.1f} | |
| 5 | commit time, first 10 vs last 10 of {args.commits} partition overwrites | without maintenance {wo["first_10_ms"]:.0f} -> {wo["last_10_ms"]:.0f} ms; with maintenance every 50 commits {w["first_10_ms"]:.0f} -> {w["last_10_ms"]:.0f} ms | {wo["growth"]:.2f}x vs {w["growth"]:.2f}x | flat with maintenance |

Not measured: the dbt-duckdb peer (issue 7). See the notes below the table in the closing note
of the session that produced this file for what bounds each figure.
"""


if __name__ == "__main__":
    sys.exit(main())
