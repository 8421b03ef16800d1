"""`marts`: the command line for what people run by hand (seed, materialize, demo, summary)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from marts_project.runs import (
    BadDateRangeError,
    instance_for,
    parse_day,
    partition_range,
    refresh_days,
)
from marts_project.settings import Settings


def _yesterday() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def _landing(settings: Settings):
    from marts_project.definitions import open_resource

    return open_resource(settings, "landing")


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    from marts_project.simulator import SimConfig, land

    end = parse_day(args.end) if args.end else _yesterday()
    days = [end - dt.timedelta(days=i) for i in reversed(range(args.days))]
    cfg = SimConfig(seed=args.seed, rows_per_day=args.rows_per_day)
    landed = land(_landing(settings), days, dt.datetime.now(dt.UTC), cfg)
    print(
        f"seeded {len(landed)} landing files for {days[0]} .. {days[-1]} under {settings.landing}"
    )
    return 0


def cmd_materialize(args: argparse.Namespace, settings: Settings) -> int:
    """Refresh the day range everywhere it flows: daily tables, weeks, months, dimensions."""
    from marts_project.definitions import build_definitions

    start, end = parse_day(args.start), parse_day(args.end or args.start)
    partition_range(start, end)  # refuse a bad range before touching anything
    home = Path(os.environ.get("DAGSTER_HOME", settings.data_dir / "dagster_home"))
    defs, instance = build_definitions(settings), instance_for(home)
    failed = 0
    for outcome in refresh_days(defs, instance, start, end):
        status = "succeeded" if outcome.success else "FAILED"
        print(
            f"{outcome.job_name:<18} {status:<9} run {outcome.run_id[:8]}  checks passed "
            f"{outcome.checks_passed}, failed {len(outcome.checks_failed)} "
            f"{' '.join(outcome.checks_failed)}",
            flush=True,
        )
        failed += (not outcome.success) + len(outcome.checks_failed)
    return 0 if failed == 0 else 1


def cmd_summary(args: argparse.Namespace, settings: Settings) -> int:
    from marts_project.summary import mart_summary

    print(mart_summary(settings))
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Seed the last N days, materialize everything for them, run the checks, summarize."""
    args.end = None
    if cmd_seed(args, settings):
        return 1
    end = _yesterday()
    args.start, args.end = (end - dt.timedelta(days=args.days - 1)).isoformat(), end.isoformat()
    status = cmd_materialize(args, settings)
    cmd_summary(args, settings)
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="marts", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def seed_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--days", type=int, default=14, help="how many closed days (default 14)")
        p.add_argument("--rows-per-day", type=int, default=200, help="ad rows per day")
        p.add_argument("--seed", type=int, default=7, help="simulator seed")

    seed = sub.add_parser("seed", help="write simulated landing files for the last N days")
    seed_opts(seed)
    seed.add_argument("--end", help="last day (default: yesterday, UTC)")
    seed.set_defaults(func=cmd_seed)

    mat = sub.add_parser("materialize", help="materialize every asset for a day range, one run")
    mat.add_argument("--start", required=True, help="first day YYYY-MM-DD")
    mat.add_argument("--end", help="last day YYYY-MM-DD (inclusive; default: start)")
    mat.set_defaults(func=cmd_materialize)

    demo = sub.add_parser("demo", help="seed, materialize, check and summarize the demo data")
    seed_opts(demo)
    demo.set_defaults(func=cmd_demo)

    summary = sub.add_parser("summary", help="print a short summary of the marts")
    summary.set_defaults(func=cmd_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args, Settings.from_env())
    except BadDateRangeError as exc:
        print(f"marts: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
