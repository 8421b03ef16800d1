"""The simulator is deterministic per seed, however many processes write its files."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest

from marts_project.resources.landing import LandingZone
from marts_project.simulator import FAR_FUTURE, SimConfig, land, landing

pytestmark = pytest.mark.quick  # the unit tier: `pytest -m quick`

DAYS = [dt.date(2026, 9, 1) + dt.timedelta(days=i) for i in range(5)]


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.csv"))
    }


def test_a_seed_split_over_processes_writes_the_same_bytes_as_one_process(tmp_path, monkeypatch):
    cfg = SimConfig(seed=3, rows_per_day=500)
    serial = land(LandingZone(root=str(tmp_path / "a")), DAYS, FAR_FUTURE, cfg, workers=1)
    monkeypatch.setattr(landing, "PARALLEL_ROWS", 1)  # split even this small seed
    split = land(LandingZone(root=str(tmp_path / "b")), DAYS, FAR_FUTURE, cfg, workers=2)

    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert [(f.source, f.day) for f in split] == [(f.source, f.day) for f in serial]
    assert len(serial) == len(DAYS) * len(landing.renderers())


def test_an_early_export_of_order_events_is_part_of_every_later_one():
    """Late events only add rows: what a day's payments, refunds and shipments files held at one
    export is still there, unchanged, in every later export."""
    cfg = SimConfig(seed=3, rows_per_day=400)
    day = DAYS[0]
    closed = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    for source in ("psp_payments", "psp_refunds", "wms_shipments"):
        render = landing.renderers()[source]
        exports = [
            set(render(cfg, day, closed + dt.timedelta(days=n)).decode().splitlines()[1:])
            for n in (0, 2, 5, 30)
        ]
        for earlier, later in zip(exports, exports[1:], strict=False):
            assert earlier <= later, source
        assert len(exports[-1]) > len(exports[0]), f"{source}: nothing arrived late"
        assert exports[-1] == set(render(cfg, day, FAR_FUTURE).decode().splitlines()[1:])
