"""The floor: the fastest plain DuckDB does the same job as a backfill. Each landing file of the
range is parsed once into a table with its source contract's rules applied, every mart is
computed from those tables (the test suite's independent definitions) and written to Parquet.
For one mart alone (`mart`), the sources are views instead, so DuckDB reads only the files that
mart's one query needs (the marketing fact: ad stats, leads and campaigns, each file once), as
a peer that models one lineage does; loading every source first made that floor pay for
orders, payments and inventory it never reads (0.3 s of 9.2 s at 28 days of 50,000 ad rows).
No orchestration, no Iceberg, no audits. Run in its own process so its peak RSS is its own:

    .venv/bin/python -m bench.floor <data folder> <first day> <last day> <out folder> [mart]

Writes the seconds of the DuckDB work (interpreter start-up excluded) to `<out>/seconds`.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, days_before
from marts_project.deployment import open_resource
from marts_project.settings import Settings


def floor(folder: Path, first: dt.date, last: dt.date, out: Path, only: str | None) -> float:
    sys.path.insert(0, str(ROOT))
    from marts_project_tests.expected import EXPECTED, landing_connection

    landing = open_resource(Settings.local(folder), "landing")
    days = days_before(last, (last - first).days + 1)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        con = landing_connection(landing, days, Path(scratch), load=only is None)
        for name, (_, sql) in EXPECTED.items():
            if only is None or name == only:
                con.execute(f"copy ({sql}) to '{out / name}.parquet' (format parquet)")
    return time.perf_counter() - started


if __name__ == "__main__":
    folder, first, last, out, *only = sys.argv[1:]
    seconds = floor(
        Path(folder),
        dt.date.fromisoformat(first),
        dt.date.fromisoformat(last),
        Path(out),
        only[0] if only else None,
    )
    Path(out, "seconds").write_text(str(seconds))
