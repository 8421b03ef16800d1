"""Benchmarks: every figure measured side by side in one run, printed as ratios and written to
BENCHMARKS.md with the machine description. Not a test: never part of the test suite.

    .venv/bin/python -m bench.run [--rows-per-day 100] [--days 90] [--history 365]
                                  [--commits 1000] [--unmaintained-commits 300]
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
from dagster import AssetKey, DagsterInstance

from marts_project.definitions import build_definitions
from marts_project.maintenance import MaintenancePolicy, maintain
from marts_project.resources.deployment import open_resource
from marts_project.runs import materialize_lineage, refresh_days
from marts_project.settings import Settings
from marts_project.simulator import FAR_FUTURE, SimConfig, land

ROOT = Path(__file__).resolve().parents[1]
END = dt.date(2026, 10, 31)
FACT = AssetKey(["marketing", "mkt_campaign_performance_fact"])


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


def floor(settings: Settings, days: list[dt.date], out: Path, only: str | None = None) -> float:
    """DuckDB straight from the landing files to Parquet: the same marts (or just `only`), no
    orchestration, no Iceberg (the queries are the test suite's independent definitions)."""
    sys.path.insert(0, str(ROOT))
    from marts_project_tests.expected import EXPECTED, landing_connection

    out.mkdir(parents=True, exist_ok=True)

    def run() -> None:
        con = landing_connection(open_resource(settings, "landing"), days, out / "copy")
        for name, (_, sql) in EXPECTED.items():
            if only is None or name == only:
                con.execute(f"copy ({sql}) to '{out / name}.parquet' (format parquet)")

    return timed(run)


def marketing_path(settings: Settings, start: dt.date, end: dt.date) -> float:
    """One run of just the performance fact and what it reads (raw, staging, intermediate),
    checks included: the same work the dbt peer does, plus validation, Iceberg and audits."""
    defs = build_definitions(settings)
    with DagsterInstance.ephemeral() as instance:
        return timed(lambda: _ok([materialize_lineage(defs, instance, FACT, start, end)]))


def figure_backfill(tmp: Path, cfg: SimConfig, ndays: int) -> dict:
    days = days_before(END, ndays)
    settings = lake(tmp / "backfill", days, cfg)
    floor_s = floor(settings, days, tmp / "floor")
    marts_s = backfill(settings, days[0], days[-1])
    return {"days": ndays, "floor_s": floor_s, "marts_s": marts_s, "ratio": marts_s / floor_s}


def figure_peer(tmp: Path, cfg: SimConfig, ndays: int) -> dict:
    """The marketing performance fact alone: marts vs the dbt-duckdb incremental peer vs the
    floor, for a backfill of `ndays` and then for a one-day refresh on top of it."""
    from bench.peers import dbt

    dbt.ensure_installed()  # not timed: a one-off install
    days = days_before(END, ndays)
    settings = lake(tmp / "peer", days, cfg)
    landing, peer_db = settings.data_dir / "landing", tmp / "peer" / "peer.duckdb"
    result = {
        "floor_s": floor(settings, days, tmp / "peer-floor", only=FACT.to_user_string()),
        "marts_s": marketing_path(settings, days[0], days[-1]),
        "dbt_s": dbt.run(landing, peer_db, days[0], days[-1]),
    }
    result["marts_day_s"] = statistics.median(marketing_path(settings, END, END) for _ in range(3))
    result["dbt_day_s"] = statistics.median(dbt.run(landing, peer_db, END, END) for _ in range(3))
    return result


def figure_history(tmp: Path, cfg: SimConfig, history: int) -> dict:
    results = {}
    for label, ndays in (("short", 7), ("long", history)):
        days = days_before(END, ndays)
        settings = lake(tmp / f"history-{ndays}", days, cfg)
        # Building the whole history is what a naive full refresh does after any change.
        results[f"full_refresh_{label}_s"] = backfill(settings, days[0], days[-1])
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
            "full_refresh_s": results.pop(f"full_refresh_{label}_s"),
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
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows-per-day", type=int, default=100)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--history", type=int, default=365)
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--unmaintained-commits", type=int, default=300)
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()
    cfg = SimConfig(seed=1, rows_per_day=args.rows_per_day)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="marts-bench-") as folder:
        tmp = Path(folder)
        fig1 = keep(figure_backfill(tmp, cfg, args.days))
        print(
            f"(1) {args.days}-day backfill: marts {fig1['marts_s']:.1f}s, floor "
            f"{fig1['floor_s']:.1f}s, ratio {fig1['ratio']:.2f}",
            flush=True,
        )
        peer = keep(figure_peer(tmp, cfg, args.days))
        print(
            f"(1b) marketing fact, {args.days} days: marts {peer['marts_s']:.1f}s, dbt-duckdb "
            f"{peer['dbt_s']:.1f}s, floor {peer['floor_s']:.1f}s; one day: marts "
            f"{peer['marts_day_s']:.1f}s, dbt-duckdb {peer['dbt_day_s']:.1f}s",
            flush=True,
        )
        fig2 = keep(figure_history(tmp, cfg, args.history))
        print(
            f"(2) one-day refresh, {args.history} vs 7 days of history: ratio "
            f"{fig2['ratio']:.2f} (time), {fig2['rss_ratio']:.2f} (peak RSS)",
            flush=True,
        )
        fig3 = keep(figure_rolling(tmp, cfg))
        print(f"(3) 7-day reprocess vs one day: ratio {fig3['ratio']:.2f}", flush=True)
        fig4 = keep(figure_overhead())
        print(
            f"(4) 2-step run: in-process {fig4['in_process']:.2f}s, multiprocess "
            f"{fig4['multiprocess']:.2f}s",
            flush=True,
        )
        fig5 = keep(figure_metadata(tmp, args.commits, args.unmaintained_commits))
        print(
            f"(5) commit growth: without maintenance ({args.unmaintained_commits} overwrites) "
            f"{fig5['without_maintenance']['growth']:.2f}x, with "
            f"{fig5['with_maintenance']['growth']:.2f}x",
            flush=True,
        )
    total = time.perf_counter() - began
    write_results(Path(args.out), render(args, fig1, peer, fig2, fig3, fig4, fig5, total))
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


def render(args, fig1, peer, fig2, fig3, fig4, fig5, total) -> str:
    w, wo = fig5["with_maintenance"], fig5["without_maintenance"]
    long, short = fig2["long"], fig2["short"]
    return f"""One run of `python -m bench.run --rows-per-day {args.rows_per_day} --days {args.days}
--history {args.history} --commits {args.commits} --unmaintained-commits
{args.unmaintained_commits}` on {machine()}, {dt.date.today()}; the
whole run took {total:.0f} s. Every ratio compares two measurements taken in that same run.

| # | figure | measured | ratio | goal |
| --- | --- | --- | --- | --- |
| 1 | {args.days}-day backfill of the whole graph (35 tables, 81 checks) vs the floor (DuckDB straight from the landing files to Parquet, no orchestration, no Iceberg) | marts {fig1["marts_s"]:.1f} s, floor {fig1["floor_s"]:.1f} s | {fig1["ratio"]:.2f} | <= 2.0 |
| 1b | the marketing performance fact alone, {args.days}-day backfill: marts (raw, staging, intermediate, fact, checks) vs the dbt-duckdb incremental peer (`bench/peers/`, delete+insert by day, `dbt run` as a user runs it) vs the floor | marts {peer["marts_s"]:.1f} s, dbt-duckdb {peer["dbt_s"]:.1f} s, floor {peer["floor_s"]:.1f} s | {peer["marts_s"] / peer["dbt_s"]:.2f} vs peer, {peer["marts_s"] / peer["floor_s"]:.2f} vs floor | |
| 1c | the same fact, one-day refresh on top of that backfill (median of 3) | marts {peer["marts_day_s"]:.2f} s, dbt-duckdb {peer["dbt_day_s"]:.2f} s | {peer["marts_day_s"] / peer["dbt_day_s"]:.2f} vs peer | |
| 2 | one-day refresh with {args.history} days of history vs with 7 (median of 3, each in a fresh process) | {long["seconds"]:.2f} s vs {short["seconds"]:.2f} s; peak RSS {long["peak_rss_mb"]:.0f} vs {short["peak_rss_mb"]:.0f} MB | {fig2["ratio"]:.2f} (time), {fig2["rss_ratio"]:.2f} (RSS) | <= 1.2 |
| 2b | naive full refresh (rebuild all {args.history} days of the graph) vs the one-day refresh | {long["full_refresh_s"]:.1f} s vs {long["seconds"]:.2f} s | {long["full_refresh_s"] / long["seconds"]:.1f} | |
| 3 | 7-day rolling reprocess vs one-day refresh (median of 3) | {fig3["seven_days_s"]:.2f} s vs {fig3["one_day_s"]:.2f} s | {fig3["ratio"]:.2f} | <= 2.0 |
| 4 | Dagster overhead: a 2-step run, in-process vs multiprocess executor (median of 3) | {fig4["in_process"]:.2f} s vs {fig4["multiprocess"]:.2f} s | {fig4["multiprocess"] / fig4["in_process"]:.1f} | |
| 5 | commit time, first 10 vs last 10 partition overwrites (cycling over {ROTATING_DAYS} days) | without maintenance, {wo["commits"]} overwrites: {wo["first_10_ms"]:.0f} -> {wo["last_10_ms"]:.0f} ms; with maintenance every 50 commits, {w["commits"]} overwrites: {w["first_10_ms"]:.0f} -> {w["last_10_ms"]:.0f} ms | {wo["growth"]:.2f}x vs {w["growth"]:.2f}x | flat with maintenance |
"""


if __name__ == "__main__":
    sys.exit(main())
