"""How long `marts seed` takes to write a year at production volume, as users run it.

`python -m bench.seed [--days 365] [--rows-per-day 50000]` runs `marts seed` in a subprocess on a
fresh data folder (wall seconds, its peak RSS), then the floor: copying the files it wrote to a
new folder (the same bytes, written without being generated), and prints the ratio and the
5-minute goal of issue 14.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import END, marts

GOAL_SECONDS = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rows-per-day", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="marts-bench-seed-") as scratch:
        folder = Path(scratch) / "data"
        wall, peak = marts(
            folder,
            "seed",
            "--days",
            str(args.days),
            "--rows-per-day",
            str(args.rows_per_day),
            "--end",
            END.isoformat(),
        )
        files = list((folder / "landing").rglob("*.csv"))
        size = sum(p.stat().st_size for p in files) / 1e6
        began = time.perf_counter()
        shutil.copytree(folder / "landing", Path(scratch) / "copy")
        floor = time.perf_counter() - began
    print(f"marts seed: {args.days} days x {args.rows_per_day:,} ad rows/day")
    print(f"  files {len(files):,}, {size:,.0f} MB")
    print(f"  marts seed     {wall:8.1f} s  ({wall / args.days:.2f} s/day)  peak RSS {peak:.2f} GB")
    print(f"  copy (floor)   {floor:8.1f} s  ratio {wall / floor:.1f}x")
    print(f"  goal {GOAL_SECONDS} s: {'met' if wall <= GOAL_SECONDS else 'missed'}")


if __name__ == "__main__":
    main()
