"""Peak memory of `marts backfill` against the length of its range, timed and measured the way
users run it: the CLI in a subprocess on the persistent embedded instance (data/dagster_home).

For each range length the same landing files are backfilled twice on fresh data folders: in
chunks sized by their landing bytes (the default, MARTS_CHUNK_MB), and as one run over the
whole range (`--chunk-days` = the range: what `marts backfill` did before chunking). Not a
test: never part of the test suite.

    .venv/bin/python -m bench.memory [--rows-per-day 50000] [--days 7 365] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path

from bench.common import END, days_before, marts, seed
from marts_project.core.partitions import CHUNK_BYTES
from marts_project.simulator import SimConfig


def backfill(
    folder: Path, start: dt.date, end: dt.date, chunk_days: int | None
) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of one `marts backfill` of [start, end] on `folder`
    (`chunk_days` None: chunks sized by landing bytes)."""
    argv = ["backfill", "--start", str(start), "--end", str(end)]
    argv += ["--chunk-days", str(chunk_days)] if chunk_days else []
    return marts(folder, *argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows-per-day", type=int, default=50_000)
    parser.add_argument("--days", type=int, nargs="+", default=[7, 365])
    parser.add_argument("--unchunked-max-days", type=int, default=60, help="skip longer ones")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 rows, 7 and 21 days")
    args = parser.parse_args()
    if args.quick:
        args.rows_per_day, args.days = 2_000, [7, 21]
    cfg = SimConfig(seed=7, rows_per_day=args.rows_per_day)
    rows = []
    with tempfile.TemporaryDirectory(prefix="marts-bench-memory-") as scratch:
        for ndays in args.days:
            days = days_before(END, ndays)
            landing = Path(scratch) / f"landing-{ndays}"
            size_mb = seed(landing, days, cfg)
            modes: list[tuple[str, int | None]] = [("sized", None)]
            if size_mb > CHUNK_BYTES / 1e6 and ndays <= args.unchunked_max_days:
                modes.append(("one run", ndays))
            for label, chunk in modes:
                folder = Path(scratch) / f"{label.replace(' ', '-')}-{ndays}"
                folder.mkdir()
                (folder / "landing").symlink_to(landing / "landing")
                seconds, peak = backfill(folder, days[0], days[-1], chunk)
                rows.append((ndays, size_mb, label, chunk, seconds, peak))
                print(
                    f"{ndays:>4} days {size_mb:>7.0f} MB landing  {label:<8} "
                    f"chunk {chunk or '-':>3}  {seconds:>7.1f} s  peak {peak:.2f} GB",
                    flush=True,
                )
    base = next(r for r in rows if r[2] == "sized")
    print(f"\nrows per day {args.rows_per_day:,}; peak RSS relative to the sized {base[0]}-day:")
    for ndays, _, label, _chunk, seconds, peak in rows:
        print(f"  {ndays:>4} days {label:<8} {peak / base[5]:.2f}x memory  {seconds:.0f} s")


if __name__ == "__main__":
    main()
