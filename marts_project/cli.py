"""`marts`: the command line for what people run by hand.

seed, backfill a date range, reprocess late data, sync (the automation loop, headless), check,
freshness, report, snapshots / show / rollback (time travel), sql, demo, summary.
"""

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
from pathlib import Path

import duckdb

from marts_project.automation.loop import (
    LoopState,
    NotConvergedError,
    converge,
    failed_partitions,
)
from marts_project.checks.report import check_table
from marts_project.definitions import build_definitions
from marts_project.freshness import partition_freshness
from marts_project.marts import ALL_MARTS
from marts_project.partitions import CHUNK_DAYS
from marts_project.report import build_report, write_report
from marts_project.resources.deployment import open_resource
from marts_project.resources.duck import connect
from marts_project.resources.iceberg_io import table_identifier
from marts_project.runs import (
    BadDateRangeError,
    instance_for,
    parse_day,
    partition_range,
    refresh_days,
)
from marts_project.settings import Settings
from marts_project.simulator import SimConfig, land
from marts_project.summary import mart_summary


def _yesterday() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def _home(settings: Settings) -> Path:
    return Path(os.environ.get("DAGSTER_HOME", settings.data_dir / "dagster_home"))


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:

    end = parse_day(args.end) if getattr(args, "end", None) else _yesterday()
    days = [end - dt.timedelta(days=i) for i in reversed(range(args.days))]
    cfg = SimConfig(seed=args.seed, rows_per_day=args.rows_per_day)
    landed = land(open_resource(settings, "landing"), days, dt.datetime.now(dt.UTC), cfg)
    print(
        f"seeded {len(landed)} landing files for {days[0]} .. {days[-1]} under {settings.landing}"
    )
    return 0


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    """Refresh a day range everywhere it flows: daily tables, weeks, months, dimensions."""

    start, end = parse_day(args.start), parse_day(args.end or args.start)
    partition_range(start, end)  # refuse a bad range before touching anything
    defs, instance = build_definitions(settings), instance_for(_home(settings))
    print(
        f"backfilling {start} .. {end}: daily tables in runs of at most {args.chunk_days} days, "
        "then weeks, months and dimensions",
        flush=True,
    )

    def report(outcome) -> None:
        status = "succeeded" if outcome.success else "FAILED"
        print(
            f"  {outcome.job_name:<18} {outcome.partitions:<22} {status:<9} run "
            f"{outcome.run_id[:8]}  checks passed {outcome.checks_passed}, failed "
            f"{len(outcome.checks_failed)} {' '.join(outcome.checks_failed)}",
            flush=True,
        )

    outcomes = refresh_days(defs, instance, start, end, args.chunk_days, on_outcome=report)
    failed = sum((not o.success) + len(o.checks_failed) for o in outcomes)
    return 0 if failed == 0 else 1


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    """Tick the landing sensor and automation until the marts match the landing zone.

    Exits 0 only when every run succeeded and no partition is left failed (by this sync or an
    earlier one); failed partitions are retried by automation at their retry time.
    """
    from dagster import deserialize_value, serialize_value

    state_file = settings.data_dir / "sync_state.json"
    state = LoopState()
    if state_file.exists():
        saved = json.loads(state_file.read_text())
        state.sensor_cursor = saved["sensor_cursor"]
        state.automation_cursor = (
            deserialize_value(saved["automation_cursor"]) if saved["automation_cursor"] else None
        )
    defs, instance = build_definitions(settings), instance_for(_home(settings))
    problem = None
    try:
        converge(defs, instance, state)
    except NotConvergedError as exc:
        problem = str(exc)
    finally:  # the cursors of every tick that ran are kept, converged or not
        state_file.write_text(
            json.dumps(
                {
                    "sensor_cursor": state.sensor_cursor,
                    "automation_cursor": serialize_value(state.automation_cursor)
                    if state.automation_cursor
                    else None,
                }
            )
        )
    for outcome in state.outcomes:
        status = "succeeded" if outcome.success else "FAILED"
        print(f"  run {outcome.run_id[:8]} {status}  checks failed: {outcome.checks_failed or 0}")
    failed = failed_partitions(defs, instance)
    runs_failed = sum(not o.success for o in state.outcomes)
    if problem:
        print(f"NOT in sync: {problem}")
    if failed:
        count = sum(len(p) for p in failed.values())
        print(
            f"NOT in sync: {count} partitions failed and are not repaired yet; automation "
            "retries them every 15 minutes (the daemon, or the next `marts sync`), or repair "
            "them now with `marts backfill`:"
        )
        for key, partitions in failed.items():
            shown = ", ".join(partitions[:8]) + (" …" if len(partitions) > 8 else "")
            print(f"  {key:<46} {shown}")
    if problem or failed or runs_failed:
        print(f"{len(state.outcomes)} runs, {runs_failed} failed")
        return 1
    print(f"in sync: {len(state.outcomes)} runs")
    return 0


def cmd_freshness(args: argparse.Namespace, settings: Settings) -> int:
    """Per-partition freshness of every partitioned mart (table, or JSON with --json)."""

    serving, landing = open_resource(settings, "serving"), open_resource(settings, "landing")
    now = dt.datetime.now(dt.UTC)
    report = {
        m.contract.name: [p.as_json() for p in partition_freshness(m, serving, landing, now)]
        for m in ALL_MARTS
        if m.asset.partitions_def
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    days = [row["day"] for row in next(iter(report.values()))]
    print(f"{'mart':<36} " + " ".join(d[5:] for d in days))
    for name, rows in report.items():
        print(f"{name:<36} " + " ".join(f"{r['status'][:5]:<5}" for r in rows))
    return 0


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    """Seed a small range on the simulator in a scratch folder, backfill it, run every check.

    Exits non-zero if a run fails or any ERROR-severity check fails (what CI runs).
    """

    from dagster import DagsterInstance

    with tempfile.TemporaryDirectory(prefix="marts-check-") as scratch:
        local = Settings.local(Path(args.data_dir) if args.data_dir else Path(scratch))
        end = _yesterday()
        start = end - dt.timedelta(days=args.days - 1)
        days = [start + dt.timedelta(days=i) for i in range(args.days)]
        cfg = SimConfig(seed=args.seed, rows_per_day=args.rows_per_day)
        land(open_resource(local, "landing"), days, dt.datetime.now(dt.UTC), cfg)
        print(f"checking {start} .. {end} ({args.rows_per_day} rows/day) in {local.data_dir}")
        with DagsterInstance.ephemeral() as instance:
            outcomes = refresh_days(build_definitions(local), instance, start, end)
    rows = [row for outcome in outcomes for row in outcome.checks]
    print(check_table(rows))
    failed_runs = [o.job_name for o in outcomes if not o.success]
    if failed_runs:
        print(f"failed runs: {', '.join(failed_runs)}")
    return 1 if failed_runs or any(o.checks_failed for o in outcomes) else 0


def _mart(name: str):

    names = {m.contract.name: m for m in ALL_MARTS if m.contract.kind == "table"}
    if name not in names:
        raise BadDateRangeError(f"unknown mart {name!r}; marts: {', '.join(sorted(names))}")
    return names[name]


def cmd_snapshots(args: argparse.Namespace, settings: Settings) -> int:
    """The snapshot history of a mart: what each commit did and which run made it."""

    identifier = table_identifier(_mart(args.mart).asset.key)
    for row in open_resource(settings, "warehouse").history(identifier):
        marker = "*" if row["current"] else (" " if row["published"] else "x")
        print(
            f"{marker} {row['snapshot_id']:>20}  {row['committed_at']:%Y-%m-%d %H:%M:%S}  "
            f"{row['operation']:<9} {row['partitions']:<24} run {str(row['run_id'])[:8]}"
        )
    print("* current   x never published (refused by an audit, or a step inside a write)")
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    """Rows of a mart now or, with --as-of, at an earlier snapshot (time travel)."""

    mart = _mart(args.mart)
    warehouse = open_resource(settings, "warehouse")
    identifier = table_identifier(mart.asset.key)
    table = (
        warehouse.read_as_of(identifier, args.as_of) if args.as_of else warehouse.read(identifier)
    )
    con = connect()
    con.register("mart", table)
    where = ""
    params: list = []
    if args.day:
        where = f' where "{mart.contract.partition_column}" = ?'
        params.append(parse_day(args.day))
    cursor = con.execute(f"select * from mart{where} limit {int(args.limit)}", params)
    names = [d[0] for d in cursor.description]
    print("\t".join(names))
    for row in cursor.fetchall():
        print("\t".join("" if v is None else str(v) for v in row))
    return 0


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    """Point a mart's main branch back at a snapshot and re-serve it."""

    identifier = table_identifier(_mart(args.mart).asset.key)
    warehouse = open_resource(settings, "warehouse")
    warehouse.rollback(identifier, args.to)
    data = warehouse.read(identifier)
    open_resource(settings, "serving").publish(identifier, data, lambda: data)
    print(f"{identifier}: main is now snapshot {args.to} ({data.num_rows} rows); serving updated")
    return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    """Write the freshness and cost page (HTML) and its data (JSON)."""

    report = build_report(
        instance_for(_home(settings)),
        open_resource(settings, "serving"),
        open_resource(settings, "landing"),
        dt.datetime.now(dt.UTC),
    )
    page, data = write_report(report, Path(args.out or settings.data_dir / "report"))
    print(f"wrote {page} and {data}")
    return 0


def cmd_reprocess(args: argparse.Namespace, settings: Settings) -> int:
    """Re-materialize the last N closed days everywhere they flow (late data nobody saw)."""
    end = _yesterday()
    args.start = (end - dt.timedelta(days=args.days - 1)).isoformat()
    args.end = end.isoformat()
    return cmd_backfill(args, settings)


def cmd_sql(args: argparse.Namespace, settings: Settings) -> int:
    """SQL on the serving database: one query, or one per line from stdin.

    The connection is read-only and locked down: no file, network or extension access and no
    settings can change, so nothing outside the serving database can be read or written.
    """

    if not settings.serving_db.exists():
        raise LookupError(f"no serving database at {settings.serving_db}: run `marts demo` first")
    queries = (
        [args.query] if args.query else [q for q in sys.stdin.read().split(";\n") if q.strip()]
    )
    with connect(str(settings.serving_db), read_only=True, locked=True) as con:
        for query in queries:
            try:
                cursor = con.execute(query)
            except duckdb.Error as exc:
                raise LookupError(f"query failed: {exc}") from None
            if cursor.description is None:
                continue
            print("\t".join(d[0] for d in cursor.description))
            for row in cursor.fetchall():
                print("\t".join("" if v is None else str(v) for v in row))
    return 0


def cmd_summary(args: argparse.Namespace, settings: Settings) -> int:

    print(mart_summary(settings))
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Seed the last N days, materialize everything for them, run the checks, summarize."""
    args.end = None
    if cmd_seed(args, settings):
        return 1
    end = _yesterday()
    args.start, args.end = (end - dt.timedelta(days=args.days - 1)).isoformat(), end.isoformat()
    status = cmd_backfill(args, settings)
    cmd_summary(args, settings)
    return status


def _positive(value: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="marts", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def seed_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--days", type=_positive, default=14, help="how many closed days (default 14)"
        )
        p.add_argument("--rows-per-day", type=_positive, default=200, help="ad rows per day")
        p.add_argument("--seed", type=int, default=7, help="simulator seed")

    def chunk_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--chunk-days",
            type=_positive,
            default=CHUNK_DAYS,
            help=f"days per daily run; bounds memory (default {CHUNK_DAYS})",
        )

    seed = sub.add_parser("seed", help="write simulated landing files for the last N days")
    seed_opts(seed)
    seed.add_argument("--end", help="last day (default: yesterday, UTC)")
    seed.set_defaults(func=cmd_seed)

    backfill = sub.add_parser(
        "backfill", aliases=["materialize"], help="refresh a day range: one run per partitioning"
    )
    backfill.add_argument("--start", required=True, help="first day YYYY-MM-DD")
    backfill.add_argument("--end", help="last day YYYY-MM-DD (inclusive; default: start)")
    chunk_opts(backfill)
    backfill.set_defaults(func=cmd_backfill)

    reprocess = sub.add_parser("reprocess", help="re-materialize the last N days (late data)")
    reprocess.add_argument(
        "--days", type=_positive, default=7, help="how many closed days (default 7)"
    )
    chunk_opts(reprocess)
    reprocess.set_defaults(func=cmd_reprocess)

    sql = sub.add_parser("sql", help="SQL on the serving database (read-only)")
    sql.add_argument("query", nargs="?", help="a query; without it, queries are read from stdin")
    sql.set_defaults(func=cmd_sql)

    sync = sub.add_parser("sync", help="run the landing sensor and automation until in sync")
    sync.set_defaults(func=cmd_sync)

    fresh = sub.add_parser("freshness", help="per-partition freshness of every mart")
    fresh.add_argument("--json", action="store_true", help="print JSON")
    fresh.set_defaults(func=cmd_freshness)

    demo = sub.add_parser("demo", help="seed, materialize, check and summarize the demo data")
    seed_opts(demo)
    chunk_opts(demo)
    demo.set_defaults(func=cmd_demo)

    check = sub.add_parser("check", help="materialize a small simulated range, run every check")
    check.add_argument("--days", type=_positive, default=3, help="days to check (default 3)")
    check.add_argument("--rows-per-day", type=_positive, default=100, help="ad rows per day")
    check.add_argument("--seed", type=int, default=7, help="simulator seed")
    check.add_argument("--data-dir", help="keep the data here (default: a scratch folder)")
    check.set_defaults(func=cmd_check)

    snaps = sub.add_parser("snapshots", help="snapshot history of a mart")
    snaps.add_argument("mart", help="mart name, e.g. mkt_campaign_performance_fact")
    snaps.set_defaults(func=cmd_snapshots)

    show = sub.add_parser("show", help="rows of a mart, now or at a snapshot (time travel)")
    show.add_argument("mart")
    show.add_argument("--as-of", type=int, help="snapshot id to read")
    show.add_argument("--day", help="only this partition day")
    show.add_argument("--limit", type=_positive, default=20, help="rows to print")
    show.set_defaults(func=cmd_show)

    rollback = sub.add_parser("rollback", help="point a mart back at an earlier snapshot")
    rollback.add_argument("mart")
    rollback.add_argument("--to", type=int, required=True, help="snapshot id")
    rollback.set_defaults(func=cmd_rollback)

    report = sub.add_parser("report", help="write the freshness and cost page (HTML + JSON)")
    report.add_argument("--out", help="folder (default: data/report)")
    report.set_defaults(func=cmd_report)

    summary = sub.add_parser("summary", help="print a short summary of the marts")
    summary.set_defaults(func=cmd_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    if missing := settings.missing_secrets():
        verb = "is" if len(missing) == 1 else "are"
        print(
            f"marts: error: the warehouse or landing zone is on S3 ({settings.warehouse}, "
            f"{settings.landing}) but {' and '.join(missing)} {verb} not set; set them in the "
            "environment (never in a file of this project)",
            file=sys.stderr,
        )
        return 2
    try:
        return args.func(args, settings)
    except (BadDateRangeError, LookupError) as exc:
        print(f"marts: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
