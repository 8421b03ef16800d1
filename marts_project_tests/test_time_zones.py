"""Nothing runs differently on a machine whose time zone is not UTC: each case runs in a fresh
process under another TZ (the zone is read once per process) and must give UTC answers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PARSE_OFFSETLESS = """
import datetime as dt
from marts_project.raw.sources import source_specs
from marts_project.raw.validation import parse_landing_file
from marts_project.resources.duck import UtcDuckDB

payload = (
    b"lead_id,created_at,email,full_name,campaign_id,is_mql\\n"
    b"L1,2026-10-05 23:30:00,a@example.com,A,cmp_0001,true\\n"
    b"L2,2026-10-05T00:10:00+02:00,b@example.com,B,cmp_0001,false\\n"
)
spec = source_specs()["mkt_crm_leads"]
parsed = parse_landing_file(
    payload, spec, dt.date(2026, 10, 5), "f.csv", UtcDuckDB(database=":memory:")
)
rows = parsed.valid.sort_by("lead_id").to_pylist()
print(parsed.valid.schema.field("created_at").type)
print([(r["lead_id"], r["lead_date"].isoformat(), r["created_at"].isoformat()) for r in rows])
print([r["reason"] for r in parsed.quarantine.to_pylist()])
"""


def run_under(zone: str, argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, env={**os.environ, "TZ": zone}, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/New_York"])
def test_landing_timestamps_are_read_and_dated_in_utc(zone):
    done = run_under(zone, [sys.executable, "-c", PARSE_OFFSETLESS])
    assert done.returncode == 0, done.stderr[-3000:]
    kind, rows, reasons = done.stdout.strip().splitlines()
    assert kind == "timestamp[us, tz=UTC]"
    # L1 has no offset: it is UTC, so it stays on the 5th. L2 is 22:10 UTC on the 4th: a
    # row of the day before, within leads' late_days, so it is kept and dated the 4th.
    assert rows == str(
        [
            ("L1", "2026-10-05", "2026-10-05T23:30:00+00:00"),
            ("L2", "2026-10-04", "2026-10-04T22:10:00+00:00"),
        ]
    )
    assert reasons == "[]"


def test_the_ci_check_passes_in_berlin(tmp_path):
    """`marts check` (materialize a small range, run every check) under Europe/Berlin."""
    marts = str(os.path.join(os.path.dirname(sys.executable), "marts"))
    done = run_under(
        "Europe/Berlin",
        [marts, "check", "--days", "2", "--rows-per-day", "40", "--data-dir", str(tmp_path)],
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "0 failed (ERROR)" in done.stdout
