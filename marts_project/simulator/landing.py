"""Landing the simulated sources' files: every source, day by day, as they look at a time."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor

from marts_project.resources.landing import LandingZone
from marts_project.simulator import commerce, marketing
from marts_project.simulator.core import (
    FAR_FUTURE,
    LandedFile,
    Renderer,
    SimConfig,
    revision_at,
)


def renderers() -> dict[str, Renderer]:
    """Every simulated source by landing name."""
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
