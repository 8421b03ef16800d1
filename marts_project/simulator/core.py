"""Simulator plumbing: seeded RNG per (source, day), revisions of late data, writing files."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import multiprocessing
import os
import random
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from marts_project.resources.landing import LandingZone


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
    closed = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    if as_of < closed:
        return None
    return min(cfg.final_revision, int((as_of - closed).total_seconds() // 86400))


def extracted_at(day: dt.date, revision: int) -> dt.datetime:
    """When revision `revision` of a day was exported: 1 h after close, then every 24 h."""
    closed = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return closed + dt.timedelta(hours=1 + 24 * revision)


def to_csv(header: list[str], rows: Iterable[list[object]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


Renderer = Callable[[SimConfig, dt.date, dt.datetime], bytes]
"""Renders one source's file for one day as it looks at a point in time (after the day closed)."""

FAR_FUTURE = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)  # as_of at which every late event has landed


def renderers() -> dict[str, Renderer]:
    """Every simulated source by landing name."""
    from marts_project.simulator import commerce, marketing

    return {**marketing.SOURCES, **commerce.SOURCES}


PARALLEL_ROWS = 2_000_000  # a seed this large is written by one process per core


def land(
    landing: LandingZone,
    days: Iterable[dt.date],
    as_of: dt.datetime,
    cfg: SimConfig | None = None,
    sources: Iterable[str] | None = None,
    workers: int | None = None,
) -> list[LandedFile]:
    """Write each source's file for every day that has closed by `as_of`, as it looks then.

    Days are independent (every generator is keyed by source, day and row), so a large seed
    is split over `workers` processes (default: one per core); the files are the same bytes.
    """
    cfg = cfg or SimConfig()
    names = list(sources) if sources is not None else list(renderers())
    closed = [day for day in days if revision_at(day, as_of, cfg) is not None]
    workers = workers or os.cpu_count() or 1
    if workers < 2 or len(closed) < 2 or len(closed) * cfg.rows_per_day < PARALLEL_ROWS:
        return _land_days(landing, closed, as_of, cfg, names)
    config = {field: getattr(landing, field) for field in type(landing).model_fields}
    slices = [closed[i::workers] for i in range(workers)]
    spawn = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
    with ProcessPoolExecutor(workers, mp_context=spawn) as pool:
        parts = pool.map(_land_slice, [(config, part, as_of, cfg, names) for part in slices])
        landed = [file for part in parts for file in part]
    return sorted(landed, key=lambda f: (f.day, names.index(f.source)))


def _land_slice(job: tuple) -> list[LandedFile]:
    config, days, as_of, cfg, names = job
    return _land_days(LandingZone(**config), days, as_of, cfg, names)


def _land_days(
    landing: LandingZone, days: list[dt.date], as_of: dt.datetime, cfg: SimConfig, names: list[str]
) -> list[LandedFile]:
    available = renderers()
    landed = []
    for day in days:
        for name in names:
            path = landing.write_bytes(name, day, available[name](cfg, day, as_of))
            landed.append(LandedFile(name, day, as_of, path))
    return landed


def restate(
    landing: LandingZone,
    day: dt.date,
    cfg: SimConfig | None = None,
    as_of: dt.datetime = FAR_FUTURE,
    sources: Iterable[str] = ("mkt_ad_stats",),
) -> list[LandedFile]:
    """Rewrite `day`'s late-arriving sources as they look at a later `as_of` (default: final)."""
    return land(landing, [day], as_of, cfg, sources)
