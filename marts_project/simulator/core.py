"""Simulator plumbing: seeded RNG per (source, day), revisions of late data, writing files."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from marts_project.core.partitions import day_closes


@dataclass(frozen=True)
class SimConfig:
    """Knobs of the simulated sources.

    Attributes:
        seed: same seed, same files, byte for byte.
        rows_per_day: ad-platform rows per day; other sources scale from it.
        late_share: share of ad rows whose conversions are restated after the day closed.
        max_delay_hours: how late restatements come; one revision per 24 h (72 h -> 3).
        refund_share: share of orders refunded, up to `refund_max_days` after the order.
    """

    seed: int = 7
    rows_per_day: int = 200
    late_share: float = 0.3
    max_delay_hours: int = 72
    refund_share: float = 0.08
    refund_max_days: int = 28

    @property
    def final_revision(self) -> int:
        return max(0, self.max_delay_hours // 24)


@dataclass(frozen=True)
class LandedFile:
    source: str
    day: dt.date
    as_of: dt.datetime
    path: str


def rng_for(cfg: SimConfig, *parts: object) -> random.Random:
    """A generator seeded from the config seed and a stable key (not Python's salted hash)."""
    key = "|".join(str(p) for p in (cfg.seed, *parts)).encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))


def revision_at(day: dt.date, as_of: dt.datetime, cfg: SimConfig) -> int | None:
    """Which revision of `day`'s files exists at `as_of` (None: the day has not closed yet)."""
    closed = day_closes(day)
    if as_of < closed:
        return None
    return min(cfg.final_revision, int((as_of - closed).total_seconds() // 86400))


def extracted_at(day: dt.date, revision: int) -> dt.datetime:
    """When revision `revision` of a day was exported: 1 h after close, then every 24 h."""
    return day_closes(day) + dt.timedelta(hours=1 + 24 * revision)


def to_csv(header: list[str], rows: Iterable[list[object]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


Renderer = Callable[[SimConfig, dt.date, dt.datetime], bytes]
"""Renders one source's file for one day as it looks at a point in time (after the day closed)."""

FAR_FUTURE = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)  # as_of at which every late event has landed
