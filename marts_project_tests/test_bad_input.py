"""Bad landing input is quarantined with a count or refused with a clear error, never lost."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
from decimal import Decimal

import pyarrow as pa
import pytest
from dagster import AssetKey

from marts_project.execution.runs import materialize_days
from marts_project.raw import validation
from marts_project.raw.sources import source_specs
from marts_project.raw.validation import LandingFileError, SchemaDriftError, parse_landing_file
from marts_project.resources.duck import UtcDuckDB
from marts_project.resources.iceberg import PartitionWindowError
from marts_project.resources.landing import HostilePathError, LandingZone
from marts_project_tests.conftest import DAY, days

BAD_ROWS = (
    b"2026-10-05,ad_bad1,cmp_0001,lots,3,1.00,USD,0,2026-10-06T01:00:00+00:00\n"  # not a bigint
    b"only,three,fields\n"  # malformed
    b"2026-10-09,ad_bad2,cmp_0001,10,3,1.00,USD,0,2026-10-06T01:00:00+00:00\n"  # wrong day
    b"2026-10-05,,cmp_0001,10,3,1.00,USD,0,2026-10-06T01:00:00+00:00\n"  # missing key
)


def test_malformed_rows_go_to_quarantine_and_rows_are_conserved(lakehouse):
    lakehouse.seed(DAY, 1)
    good = lakehouse.landing.read_bytes("mkt_ad_stats", DAY)
    lakehouse.landing.write_bytes("mkt_ad_stats", DAY, good + BAD_ROWS)
    rows_in = good.count(b"\n") - 1 + BAD_ROWS.count(b"\n")

    outcome = lakehouse.run(DAY)

    raw = lakehouse.warehouse.read("raw.raw_mkt_ad_stats")
    quarantine = lakehouse.warehouse.read("raw.quarantine").to_pylist()
    ads_quarantine = [q for q in quarantine if q["source"] == "mkt_ad_stats"]
    assert len(ads_quarantine) == 4
    assert raw.num_rows + len(ads_quarantine) == rows_in
    reasons = sorted(q["reason"] for q in ads_quarantine)
    assert reasons == sorted(
        [
            "impressions: not a valid bigint",
            "malformed row: expected 9 fields, got 3",
            "stat_date 2026-10-09 is after the file's day 2026-10-05",
            "ad_id: required value missing",
        ]
    )
    assert {q["source_file"] for q in ads_quarantine} == {"mkt_ad_stats/2026-10-05.csv"}
    assert all(q["source_line"] > 1 for q in ads_quarantine)
    materialization = lakehouse.instance.get_latest_materialization_event(
        AssetKey(["raw", "raw_mkt_ad_stats"])
    ).asset_materialization
    assert materialization.metadata["rows_quarantined"].value == 4
    assert materialization.metadata["rows_in"].value == rows_in
    assert outcome.checks_failed == []


def test_quarantine_is_replaced_not_appended_on_rerun(lakehouse):
    lakehouse.seed(DAY, 1)
    good = lakehouse.landing.read_bytes("mkt_ad_stats", DAY)
    lakehouse.landing.write_bytes("mkt_ad_stats", DAY, good + BAD_ROWS)
    lakehouse.run(DAY)
    lakehouse.run(DAY)
    assert lakehouse.warehouse.read("raw.quarantine").num_rows == 4


def test_missing_required_column_blocks_the_partition_and_downstream(lakehouse):
    lakehouse.seed(DAY, 2)
    lakehouse.run(DAY, days(DAY, 2)[-1])
    before = lakehouse.mart()
    drifted = b"\n".join(
        b",".join(line.split(b",")[:-1])
        for line in lakehouse.landing.read_bytes("mkt_ad_stats", DAY).splitlines()
    )  # the export lost its last column, extracted_at
    lakehouse.landing.write_bytes("mkt_ad_stats", DAY, drifted)

    outcome = materialize_days(lakehouse.defs, lakehouse.instance, DAY, DAY)

    assert not outcome.success
    failure = [
        e
        for e in lakehouse.instance.all_logs(outcome.run_id)
        if e.dagster_event and e.dagster_event.event_type_value == "STEP_FAILURE"
    ]
    message = failure[0].dagster_event.step_failure_data.error.cause.message
    assert "required column(s) extracted_at missing from mkt_ad_stats/2026-10-05.csv" in message
    assert lakehouse.mart().sort_by("campaign_id").equals(before.sort_by("campaign_id"))


def test_added_column_is_ignored_and_reported():
    spec = source_specs()["mkt_campaigns"]
    payload = (
        b"snapshot_date,campaign_id,campaign_name,channel,platform,status,daily_budget,new_col\n"
        b"2026-10-05,c1,n,search,google_ads,active,10.00,x\n"
    )
    parsed = parse_landing_file(payload, spec, DAY, "f.csv", UtcDuckDB(database=":memory:"))
    assert parsed.valid.num_rows == 1 and parsed.ignored_columns == ("new_col",)


def test_an_invalid_optional_value_becomes_null_and_the_row_is_kept_with_the_reason():
    spec = source_specs()["mkt_campaigns"]
    payload = (
        b"snapshot_date,campaign_id,campaign_name,channel,platform,status,daily_budget\n"
        b"2026-10-05,c1,n,search,google_ads,active,n/a\n"
        b"2026-10-05,c2,m,search,google_ads,active,12.50\n"
        b"2026-10-05,c3,,search,google_ads,active,10.00\n"  # campaign_name is required
    )
    parsed = parse_landing_file(payload, spec, DAY, "f.csv", UtcDuckDB(database=":memory:"))
    kept = {r["campaign_id"]: r for r in parsed.valid.to_pylist()}
    assert set(kept) == {"c1", "c2"}
    assert kept["c1"]["daily_budget"] is None
    assert kept["c1"]["_value_issues"] == (
        "daily_budget: not a valid decimal(18,2) (n/a), set to null"
    )
    assert kept["c2"]["daily_budget"] == Decimal("12.50") and kept["c2"]["_value_issues"] is None
    assert parsed.quarantine.column("reason").to_pylist() == [
        "campaign_name: required value missing"
    ]


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"", "empty file"), (b"\xff\xfe\x00bad", "not UTF-8"), (b"a,a\n1,2\n", "duplicate column")],
)
def test_unreadable_files_are_refused_with_a_clear_error(payload, message):
    spec = source_specs()["mkt_campaigns"]
    with pytest.raises(LandingFileError, match=message):
        parse_landing_file(payload, spec, DAY, "f.csv", UtcDuckDB(database=":memory:"))


def test_schema_drift_error_names_the_missing_columns():
    spec = source_specs()["mkt_campaigns"]
    with pytest.raises(SchemaDriftError, match="channel, platform"):
        parse_landing_file(
            b"snapshot_date,campaign_id,campaign_name,status\n",
            spec,
            DAY,
            "f",
            UtcDuckDB(database=":memory:"),
        )


@pytest.mark.parametrize("source", ["../etc", "a/b", "", "UPPER", "x" * 80, None])
def test_hostile_source_names_never_become_paths(tmp_path, source):
    with pytest.raises(HostilePathError):
        LandingZone(root=str(tmp_path)).path(source, DAY)


def test_partition_write_refuses_rows_outside_its_days(lakehouse):
    data = pa.table({"d": [DAY, DAY + dt.timedelta(days=1)], "v": [1, 2]})
    with pytest.raises(PartitionWindowError, match="1 of 2 rows have d outside"):
        lakehouse.warehouse.overwrite_days("raw.t", data, "d", DAY, DAY + dt.timedelta(days=1))
    assert not lakehouse.warehouse.table_exists("raw.t")


def test_an_empty_write_adds_a_snapshot_only_when_it_removes_rows(lakehouse):
    """A clean day's quarantine write (no rows over a window holding none) commits nothing;
    an empty write over rows that are there still removes them."""
    warehouse, next_day = lakehouse.warehouse, DAY + dt.timedelta(days=1)
    rows = pa.table({"d": [DAY, DAY], "v": [1, 2]})
    warehouse.overwrite_days("raw.q", rows, "d", DAY, next_day)
    snapshots = len(warehouse.load_table("raw.q").snapshots())

    later = next_day + dt.timedelta(days=1)
    assert warehouse.overwrite_days("raw.q", rows.slice(0, 0), "d", next_day, later).rows == 0
    assert len(warehouse.load_table("raw.q").snapshots()) == snapshots  # nothing to do

    warehouse.overwrite_days("raw.q", rows.slice(0, 0), "d", DAY, next_day)
    assert len(warehouse.load_table("raw.q").snapshots()) > snapshots
    assert warehouse.read("raw.q").num_rows == 0


def test_an_added_column_is_carried_when_the_source_says_so(lakehouse):
    lakehouse.seed(DAY, 1)
    lines = lakehouse.landing.read_bytes("mkt_crm_leads", DAY).decode().splitlines()
    with_custom = [lines[0] + ",lead_score"] + [f"{line},{i}" for i, line in enumerate(lines[1:])]
    lakehouse.landing.write_bytes("mkt_crm_leads", DAY, ("\n".join(with_custom) + "\n").encode())

    lakehouse.run(DAY)

    raw = lakehouse.warehouse.read("raw.raw_mkt_crm_leads")
    assert raw.column("lead_score").to_pylist() == [str(i) for i in range(len(lines) - 1)]
    assert "lead_score" not in lakehouse.warehouse.read("staging.stg_mkt_leads").column_names


class _CountingStream(io.BytesIO):
    """A landing file that records the largest single read made of it."""

    largest_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        _CountingStream.largest_read = max(_CountingStream.largest_read, len(data))
        return data


def _ad_stats_file(rows: int) -> bytes:
    header = (
        b"stat_date,ad_id,campaign_id,impressions,clicks,spend,currency,conversions,extracted_at\n"
    )
    body = [
        b"2026-10-05,ad_%06d,cmp_0001,%d,3,1.00,USD,0,2026-10-06T01:00:00+00:00\n" % (i, i)
        for i in range(rows)
    ]
    body[1234] = b"only,three,fields\n"  # malformed rows, one each side of block boundaries
    body[4321] = b"2026-10-05,ad_x,cmp_0001,lots,3,1.00,USD,0,2026-10-06T01:00:00+00:00\n"
    body[7000] = b"too,few\n"
    return header + b"".join(body)


def test_a_large_file_is_streamed_in_blocks_with_the_same_result_as_one_read(monkeypatch):
    spec = source_specs()["mkt_ad_stats"]
    payload = _ad_stats_file(9_000)
    whole = parse_landing_file(payload, spec, DAY, "f.csv", UtcDuckDB(database=":memory:"))

    monkeypatch.setattr(validation, "BLOCK_BYTES", 16_384)  # about 200 rows a block
    monkeypatch.setattr(validation, "GROUP_BYTES", 65_536)  # several blocks a query
    _CountingStream.largest_read = 0
    file = validation.LandingFile(lambda: _CountingStream(payload), DAY, "f.csv")
    streamed = validation.parse_landing_files([file], spec, UtcDuckDB(database=":memory:"))

    assert _CountingStream.largest_read <= 16_384  # never the whole file at once
    assert streamed.valid.to_pylist() == whole.valid.to_pylist()
    assert streamed.quarantine.to_pylist() == whole.quarantine.to_pylist()
    lines = {r["source_line"]: r["reason"] for r in streamed.quarantine.to_pylist()}
    assert lines == {
        1236: "malformed row: expected 9 fields, got 3",
        4323: "impressions: not a valid bigint",
        7002: "malformed row: expected 9 fields, got 2",
    }
    good = streamed.valid.column("_source_line").to_pylist()
    assert good == [n for n in range(2, 9_002) if n not in lines]  # each row keeps its line
    assert streamed.rows_in == 9_000 == streamed.valid.num_rows + streamed.quarantine.num_rows


def test_only_a_file_with_rejects_is_read_again_and_every_row_keeps_its_line(monkeypatch):
    """Files are read on every core without line numbers; the one with malformed or rejected
    rows is read again, numbered: its quarantined rows keep their lines and text, and the
    valid rows of every file have the same lines as a numbered read gives them."""
    spec = source_specs()["mkt_ad_stats"]
    dirty = _ad_stats_file(9_000)
    header, *rows = dirty.splitlines(keepends=True)
    clean = header + b"".join(r for r in rows if b"ad_x" not in r and r.count(b",") == 8)
    files = [
        validation.LandingFile.of_bytes(clean, DAY, "clean.csv"),
        validation.LandingFile.of_bytes(dirty, DAY + dt.timedelta(days=1), "dirty.csv"),
    ]
    numbered = []
    real_read = validation._read_strings

    def read(file, *args):
        numbered.append((file.source_file, args[-1]))
        return real_read(file, *args)

    monkeypatch.setattr(validation, "_read_strings", read)
    parsed = validation.parse_landing_files(files, spec, UtcDuckDB(database=":memory:"))

    assert numbered == [("clean.csv", False), ("dirty.csv", False), ("dirty.csv", True)]
    assert {(r["source_file"], r["source_line"]) for r in parsed.quarantine.to_pylist()} == {
        ("dirty.csv", 1236),
        ("dirty.csv", 4323),
        ("dirty.csv", 7002),
    }
    assert b"only,three,fields" in b"".join(
        r["record"].encode() for r in parsed.quarantine.to_pylist()
    )
    lines = parsed.valid.select(["_source_file", "_source_line"]).to_pylist()
    assert [r["_source_line"] for r in lines if r["_source_file"] == "clean.csv"] == list(
        range(2, 2 + 8_997)
    )
    skipped = {1236, 4323, 7002}
    assert [r["_source_line"] for r in lines if r["_source_file"] == "dirty.csv"] == [
        n for n in range(2, 9_002) if n not in skipped
    ]
    assert parsed.rows_in == 8_997 + 9_000 == parsed.valid.num_rows + parsed.quarantine.num_rows
    assert parsed.rows_in_by_day == {DAY: 8_997, DAY + dt.timedelta(days=1): 9_000}


def test_invalid_utf8_deep_in_a_streamed_file_is_refused_naming_the_byte(monkeypatch):
    spec = source_specs()["mkt_ad_stats"]
    payload = _ad_stats_file(9_000)
    at = len(payload) - 100
    payload = payload[:at] + b"\xff" + payload[at + 1 :]
    monkeypatch.setattr(validation, "BLOCK_BYTES", 16_384)
    with pytest.raises(LandingFileError, match=f"not UTF-8 \\(byte {at}\\)"):
        parse_landing_file(payload, spec, DAY, "f.csv", UtcDuckDB(database=":memory:"))


SECRET = "sk_live_" + "9f2c" * 12  # the first line of a file outside the landing zone


def _everything_the_run_logged(lakehouse, run_id: str) -> str:
    return "\n".join(str(entry) for entry in lakehouse.instance.all_logs(run_id))


def test_a_link_out_of_the_landing_zone_is_refused_and_its_content_never_logged(
    lakehouse, tmp_path
):
    lakehouse.seed(DAY, 1)
    outside = tmp_path / "secrets.txt"
    outside.write_text(f"{SECRET}\n")
    link = f"{lakehouse.settings.landing}/mkt_campaigns/{DAY}.csv"
    os.unlink(link)
    os.symlink(outside, link)
    with pytest.raises(HostilePathError, match="a link to a file outside the landing zone"):
        lakehouse.landing.open_file("mkt_campaigns", DAY)

    outcome = materialize_days(lakehouse.defs, lakehouse.instance, DAY, DAY)
    assert not outcome.success
    logged = _everything_the_run_logged(lakehouse, outcome.run_id)
    assert "a link to a file outside the landing zone" in logged
    assert SECRET[:12] not in logged


def test_a_header_in_an_error_is_column_names_cut_short_never_the_line():
    spec = source_specs()["mkt_campaigns"]
    with pytest.raises(SchemaDriftError) as refused:
        parse_landing_file(
            f"{SECRET}\n1\n".encode(), spec, DAY, "f", UtcDuckDB(database=":memory:")
        )
    message = str(refused.value)
    assert "found 1 columns: sk_live_9f2c9f2c9f2c9f2…" in message
    assert SECRET not in message


def test_an_optional_column_renamed_by_the_source_is_loaded_as_null_and_warned(lakehouse):
    lakehouse.seed(DAY, 1)
    original = lakehouse.landing.read_bytes("mkt_campaigns", DAY)
    header, rest = original.split(b"\n", 1)
    lakehouse.landing.write_bytes(
        "mkt_campaigns", DAY, header.replace(b"channel_owner", b"owner_name") + b"\n" + rest
    )
    outcome = materialize_days(lakehouse.defs, lakehouse.instance, DAY, DAY)

    assert outcome.success  # the partition is written: the column is optional
    (check,) = [c for c in outcome.checks if c.check == "header_matches_contract" and not c.passed]
    assert (check.asset, check.severity) == ("raw/raw_mkt_campaigns", "WARN")
    assert "mkt_campaigns/2026-10-05.csv: channel_owner" in check.detail
    assert "columns not in the contract: owner_name" in check.detail
    owners = lakehouse.warehouse.read("raw.raw_mkt_campaigns").column("channel_owner")
    assert owners.null_count == len(owners)


def test_a_range_run_judges_and_counts_each_day_on_its_own(lakehouse):
    """A backfill chunk writes several days in one step; each landing file's quarantine share is
    judged alone (a bad file is not averaged away by good ones: the same verdict as a run of its
    day), only the days that read it are recorded as blocked, and each day's materialization
    counts its own rows."""
    first, *_, last = span = days(DAY, 3)
    lakehouse.seed(first, 3)
    lines = lakehouse.landing.read_bytes("mkt_ad_stats", DAY).splitlines()
    keyless = [re.sub(rb"^([^,]*),[^,]*,", rb"\1,,", line) for line in lines[1::8]]  # 1 in 8
    kept = [line for n, line in enumerate(lines) if n == 0 or (n - 1) % 8]
    lakehouse.landing.write_bytes("mkt_ad_stats", DAY, b"\n".join(kept + keyless) + b"\n")
    share = len(keyless) / (len(lines) - 1)
    landed = {d: lakehouse.landing.read_bytes("mkt_ad_stats", d).count(b"\n") - 1 for d in span}
    limit = source_specs()["mkt_ad_stats"].max_quarantine_share
    assert share > limit > len(keyless) / sum(landed.values())  # the day's over, the chunk's not

    outcome = materialize_days(lakehouse.defs, lakehouse.instance, first, last)

    verdict = next(c for c in outcome.checks if c.check == "quarantine_share")
    assert not verdict.passed and str(DAY) in verdict.detail
    key = AssetKey(["raw", "raw_mkt_ad_stats"])
    per_day = {
        r.partition_key: r.asset_materialization.metadata
        for r in lakehouse.instance.fetch_materializations(key, limit=10).records
    }
    for day in span:
        quarantined = len(keyless) if day == DAY else 0
        metadata = per_day[str(day)]
        assert metadata["rows_in"].value == landed[day], day
        assert metadata["rows_quarantined"].value == quarantined, day
        assert metadata["rows_published"].value == landed[day] - quarantined, day
    records = lakehouse.warehouse.build_records("raw.raw_mkt_ad_stats")
    assert {day: r.blocked for day, r in records.items()} == {
        str(d): ("quarantine_share",) if d == DAY else () for d in span
    }
