"""Wall time and peak RSS of small refreshes, timed the way users run them: the CLI in a
subprocess on a persistent embedded instance, after a backfill of the days before.

A one-day refresh (`marts backfill --start D --end D`, median of `--repeat`) and a 7-day
reprocess (`marts reprocess --days 7`) at demo size. Not a test: never part of the suite.

    .venv/bin/python -m bench.refresh [--rows-per-day 200] [--history 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
from pathlib import Path

from bench.common import days_before, marts, seed
from marts_project.simulator import SimConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows-per-day", type=int, default=200)
    parser.add_argument("--history", type=int, default=8, help="days backfilled first")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    days = days_before(yesterday, args.history)
    with tempfile.TemporaryDirectory(prefix="marts-bench-refresh-") as scratch:
        folder = Path(scratch)
        seed(folder, days, SimConfig(seed=7, rows_per_day=args.rows_per_day))
        marts(folder, "backfill", "--start", str(days[0]), "--end", str(days[-1]))
        one_day = [
            marts(folder, "backfill", "--start", str(yesterday), "--end", str(yesterday))
            for _ in range(args.repeat)
        ]
        week = marts(folder, "reprocess", "--days", "7")
    median = statistics.median(s for s, _ in one_day)
    print(f"rows per day {args.rows_per_day:,}, {args.history} days of history")
    print(
        f"  one-day refresh  median {median:.1f} s of {[round(s, 1) for s, _ in one_day]}, "
        f"peak {max(p for _, p in one_day):.2f} GB"
    )
    print(f"  7-day reprocess  {week[0]:.1f} s ({week[0] / median:.2f}x), peak {week[1]:.2f} GB")


if __name__ == "__main__":
    main()
