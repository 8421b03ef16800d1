"""Peak memory and time of ingesting one large landing file, against DuckDB reading it alone,
and of `marts backfill` of its day through every layer.

A source that sends one very large file for a day (a re-export, a backlog) must not need a
multiple of the file in memory. The file is made by repeating the data rows of a simulated
day's file until it reaches `--mb`; each measurement runs in a fresh subprocess so its peak RSS
is its own. Not a test: never part of the test suite.

    .venv/bin/python -m bench.landing [--source shop_orders] [--mb 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
from pathlib import Path

DAY = dt.date(2026, 10, 31)

# Run in a child: RSS after imports (baseline), then peak RSS and seconds of the job itself.
CHILD = """
import json, resource, sys, time, datetime as dt
from marts_project.raw.assets import ingest
from marts_project.raw.sources import source_specs
from marts_project.deployment import open_resource
from marts_project.resources.duck import UtcDuckDB, connect
from marts_project.settings import Settings
folder, source, mode = sys.argv[1], sys.argv[2], sys.argv[3]
day = dt.date.fromisoformat(sys.argv[4])
landing = open_resource(Settings.local(folder), "landing")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
if mode == "marts":
    published, quarantine, *_ = ingest(source_specs()[source], [day], landing,
                                          UtcDuckDB(database=":memory:"))
    rows = published.num_rows + quarantine.num_rows
else:  # the floor: DuckDB reads and types the file, nothing else
    con = connect()
    rows = con.execute(
        "select count(*) from (select * from read_csv(?, header=true))",
        [landing.path(source, day)],
    ).fetchone()[0]
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": rows, "seconds": seconds, "base_kb": base, "peak_kb": peak}))
"""


def make_file(folder: Path, source: str, megabytes: int) -> float:
    """A landing file of about `megabytes` for `source` on DAY; returns its size in MB."""
    from marts_project.deployment import open_resource
    from marts_project.settings import Settings
    from marts_project.simulator import FAR_FUTURE, SimConfig, land

    landing = open_resource(Settings.local(folder), "landing")
    land(landing, [DAY], FAR_FUTURE, SimConfig(seed=11, rows_per_day=20_000))
    header, *rows = landing.read_bytes(source, DAY).splitlines(keepends=True)
    block = b"".join(rows)
    path = Path(landing.path(source, DAY))
    with path.open("wb") as out:
        out.write(header)
        for _ in range(max(1, megabytes * 1_000_000 // len(block))):
            out.write(block)
    return path.stat().st_size / 1e6


def backfill(folder: Path) -> dict:
    """`marts backfill` of the day, all layers, as users run it: peak RSS of the CLI process."""
    from bench.memory import backfill as run_backfill

    seconds, peak_gb = run_backfill(folder, DAY, DAY, 1)
    return {"seconds": seconds, "peak_gb": peak_gb}


def measure(folder: Path, source: str, mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), source, mode, DAY.isoformat()],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", default="shop_orders")
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="marts-bench-landing-") as scratch:
        size = make_file(Path(scratch), args.source, args.mb)
        print(f"{args.source}/{DAY}.csv: {size:.0f} MB")
        results = {mode: measure(Path(scratch), args.source, mode) for mode in ("duckdb", "marts")}
        whole = backfill(Path(scratch))
    floor = results["duckdb"]
    for mode, r in results.items():
        above = (r["peak_kb"] - r["base_kb"]) / 1024**2
        print(
            f"  {mode:<7} {r['rows']:>10,} rows  {r['seconds']:6.1f} s "
            f"({r['seconds'] / floor['seconds']:.1f}x)  peak {r['peak_kb'] / 1024**2:.2f} GB, "
            f"{above:.2f} GB above baseline ({above * 1024 / size:.1f}x the file)"
        )
    print(
        f"  marts backfill of the day (every layer, CLI): {whole['seconds']:.0f} s, "
        f"peak {whole['peak_gb']:.2f} GB"
    )


if __name__ == "__main__":
    main()
