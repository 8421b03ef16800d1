"""A row that arrives in a later day's file belongs to its own day (within its source's
late_days), the winner of duplicates is the one the source contract names, and a row that is
too late or in the wrong currency is quarantined with its reason, never silently lost."""

from __future__ import annotations

import datetime as dt

from marts_project.core.versions import BuildRecord
from marts_project.definitions import build_definitions
from marts_project.execution.runs import refresh_days
from marts_project.planning.planner import facts_of, feeding_files, make_plan, run_requests
from marts_project.settings import Settings
from marts_project_tests.conftest import DAY, FINAL, days
from marts_project_tests.expected import mismatches

NEXT = DAY + dt.timedelta(days=1)


def append_line(lake, source: str, day: dt.date, line: str) -> None:
    lake.landing.write_bytes(source, day, lake.landing.read_bytes(source, day) + line.encode())


def first_row(lake, source: str, day: dt.date) -> dict[str, str]:
    header, row = lake.landing.read_bytes(source, day).decode().splitlines()[:2]
    return dict(zip(header.split(","), row.split(","), strict=True))


def test_late_rows_count_in_their_own_day_and_the_contract_winner_is_kept(lakehouse, tmp_path):
    lakehouse.seed(DAY, 2)
    ad = first_row(lakehouse, "mkt_ad_stats", DAY)
    lead = first_row(lakehouse, "mkt_crm_leads", DAY)
    # A restatement of DAY's first ad row arrives in NEXT's file, exported later, with more
    # conversions: it must replace the row of DAY's file.
    restated = dict(ad, conversions=str(int(ad["conversions"]) + 7))
    restated["extracted_at"] = (
        dt.datetime.fromisoformat(ad["extracted_at"]) + dt.timedelta(hours=24)
    ).isoformat()
    append_line(lakehouse, "mkt_ad_stats", NEXT, ",".join(restated.values()) + "\n")
    # A lead created two minutes before DAY's midnight, exported with NEXT's file.
    late_lead = dict(lead, lead_id="L-late-1", created_at=f"{DAY}T23:58:00+00:00")
    append_line(lakehouse, "mkt_crm_leads", NEXT, ",".join(late_lead.values()) + "\n")
    # Too late (three days before the file's day, leads allow one) and not USD: quarantined.
    too_late = dict(lead, lead_id="L-late-2", created_at=f"{DAY - dt.timedelta(days=2)}T10:00:00Z")
    append_line(lakehouse, "mkt_crm_leads", NEXT, ",".join(too_late.values()) + "\n")
    euro = dict(ad, ad_id="ad-eur", currency="EUR")
    append_line(lakehouse, "mkt_ad_stats", DAY, ",".join(euro.values()) + "\n")

    outcomes = refresh_days(lakehouse.defs, lakehouse.instance, DAY, NEXT)
    assert all(o.success for o in outcomes)

    leads = lakehouse.warehouse.read("staging.stg_mkt_leads").to_pylist()
    assert {r["lead_id"]: r["lead_date"] for r in leads}["L-late-1"] == DAY
    ads = lakehouse.warehouse.read("staging.stg_mkt_ad_stats").to_pylist()
    kept = [r for r in ads if r["ad_id"] == ad["ad_id"] and r["stat_date"] == DAY]
    assert [r["conversions"] for r in kept] == [int(restated["conversions"])]
    reasons = {q["reason"] for q in lakehouse.warehouse.read("raw.quarantine").to_pylist()}
    assert (
        f"lead_date {DAY - dt.timedelta(days=2)} is more than 1 days before the file's day {NEXT}"
        in reasons
    )
    assert "currency: EUR is not one of USD" in reasons
    found = mismatches(lakehouse, days(DAY, 2), tmp_path / "expected")
    assert found == {}, "\n".join(f"{k}: {v}" for k, v in found.items())


def test_a_later_file_requests_the_earlier_days_its_late_rows_belong_to(tmp_path):
    facts = facts_of(build_definitions(Settings.local(tmp_path)).assets)
    raw = {k: f for k, f in facts.items() if f.source in ("mkt_crm_leads", "mkt_ad_stats")}
    landed = {
        f"{s}/{d}.csv": "v1"
        for s in ("mkt_crm_leads", "mkt_ad_stats")
        for d in days(DAY - dt.timedelta(days=9), 10)
    }
    del landed[f"mkt_ad_stats/{NEXT - dt.timedelta(days=3)}.csv"]  # never delivered
    # every landed day built from the files as they were, then NEXT's two files land
    records = {
        key: {
            day: BuildRecord(f.code, FINAL, "run", landing=feeding_files(f.source, day, landed))
            for day in {k.split("/")[1][:10] for k in landed if k.startswith(f.source + "/")}
        }
        for key, f in raw.items()
    }
    landed |= {f"mkt_crm_leads/{NEXT}.csv": "v1", f"mkt_ad_stats/{NEXT}.csv": "v1"}

    plan = make_plan(raw, records, landed)
    requested = {
        (
            tuple(sorted(k.path[-1] for k in r.asset_selection)),
            r.tags["dagster/asset_partition_range_start"],
            r.tags["dagster/asset_partition_range_end"],
        )
        for r in run_requests(plan, raw)
    }
    # ad stats' late rows reach three days back (the day whose file never landed is not built
    # until it does); leads' one day
    two_back = (NEXT - dt.timedelta(days=2)).isoformat()
    assert requested == {
        (("raw_mkt_ad_stats",), two_back, NEXT.isoformat()),
        (("raw_mkt_crm_leads",), DAY.isoformat(), NEXT.isoformat()),
    }
    reasons = {(s.asset.path[-1], s.partition): s.reason for s in plan.stale}
    assert reasons[("raw_mkt_ad_stats", two_back)] == "landing changed"
    assert reasons[("raw_mkt_ad_stats", NEXT.isoformat())] == "never built"
