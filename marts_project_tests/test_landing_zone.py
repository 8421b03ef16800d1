"""The landing zone on S3 answers what a check needs of many files with one listing, and what a
raw step needs of one file with one request: a freshness check asked for each file of each
judged day in turn (two requests a file), which on S3 made it wait on the network."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from marts_project.resources.landing import LandingZone
from marts_project_tests.conftest import DAY, new_bucket
from marts_project_tests.s3_faults import FaultyS3Proxy

SOURCES = ("ad_platform", "crm")
DAYS = [DAY + dt.timedelta(days=i) for i in range(10)]


@pytest.fixture
def counting(s3_endpoint: str) -> Iterator[FaultyS3Proxy]:
    """A proxy in front of the S3 server that counts the requests it forwards (no faults)."""
    host, port = s3_endpoint.removeprefix("http://").split(":")
    server = FaultyS3Proxy((host, int(port))).start()
    yield server
    server.stop()


@pytest.fixture
def zone(s3_endpoint: str, counting: FaultyS3Proxy, s3_credentials, tmp_path: Path) -> LandingZone:
    """Twenty landing files (two sources, ten days) in a new bucket, reached through the proxy."""
    bucket = new_bucket(s3_endpoint, tmp_path)
    landing = LandingZone(root=f"s3://{bucket}/landing", s3_endpoint=counting.endpoint)
    for source in SOURCES:
        for day in DAYS:
            landing.write_bytes(source, day, f"{source},{day}\n".encode())
    return landing


def requests(proxy: FaultyS3Proxy, action):
    """What `action` returns and the S3 requests it made."""
    before = proxy.forwarded
    result = action()
    return result, proxy.forwarded - before


def test_a_snapshot_lists_every_file_in_one_request_and_agrees_with_each_file(
    zone: LandingZone, counting: FaultyS3Proxy
):
    snapshot, made = requests(counting, zone.snapshot)
    assert made == 1
    assert len(snapshot.files) == len(SOURCES) * len(DAYS)
    for source in SOURCES:
        for day in DAYS:
            version, made = requests(counting, lambda s=source, d=day: zone.version(s, d))
            assert made <= 1  # never `exists` and then `info`
            fingerprint, written = version
            assert snapshot.fingerprints()[LandingZone.key(source, day)] == fingerprint
            assert snapshot.modified_at(source, day) == written
            assert written.tzinfo is not None


def test_a_missing_file_has_no_version_and_no_arrival(zone: LandingZone):
    before = DAYS[0] - dt.timedelta(days=1)
    assert zone.version("crm", before) is None
    assert zone.snapshot().modified_at("crm", before) is None
    assert set(zone.snapshot().versions()) == set(zone.fingerprints())


def test_a_snapshot_sums_each_days_bytes_over_the_sources_asked_for(zone: LandingZone):
    """What sizes a backfill's chunks: the bytes a run of those days would read."""
    snapshot = zone.snapshot()
    size = {s: {d: len(f"{s},{d}\n") for d in DAYS} for s in SOURCES}
    assert snapshot.day_bytes(["crm"]) == size["crm"]
    assert snapshot.day_bytes(SOURCES) == {d: size["crm"][d] + size["ad_platform"][d] for d in DAYS}
    assert snapshot.day_bytes(["not_a_source"]) == {}
