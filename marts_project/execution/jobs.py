"""The refresh jobs (one per partitioning: a run covers one range of one partitioning, a
Dagster rule) and the one function that says which runs refresh a day range: the CLI's serial
path, `--workers`, the cluster launcher and the schedules all ask `refresh_runs`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from dagster import AssetCheckKey, AssetKey, AssetSelection, define_asset_job

from marts_project.assets import SHARED_LAYERS
from marts_project.core.partitions import (
    CHUNK_DAYS,
    PERIODS_PER_RUN,
    contiguous_key_ranges,
    daily_partitions,
    day_chunks,
    keys_covering,
    monthly_partitions,
    weekly_partitions,
)
from marts_project.marts import ALL_MARTS
from marts_project.observability.contract_checks import build_contract_checks

MART_CHECKS = [check for mart in ALL_MARTS for check in build_contract_checks(mart)]


def _marts_partitioned_by(partitions_def) -> list:
    return [m.asset for m in ALL_MARTS if m.asset.partitions_def == partitions_def]


def checks_named(*names: str) -> list[AssetCheckKey]:
    return [key for c in MART_CHECKS for key in c.check_keys if key.name in names]


# An SLO budget reads weeks of run history: judged hourly (freshness_checks_job), not by every
# refresh run.
JUDGED_HOURLY = frozenset(checks_named("slo_budget"))
NOT_IN_REFRESHES = AssetSelection.checks(*JUDGED_HOURLY)

daily_assets_job = define_asset_job(
    "daily_assets_job",
    selection=AssetSelection.assets(*SHARED_LAYERS, *_marts_partitioned_by(daily_partitions))
    - NOT_IN_REFRESHES,
    partitions_def=daily_partitions,
    description="Every day-partitioned table, raw to marts, for a day or a range of days.",
)
weekly_marts_job = define_asset_job(
    "weekly_marts_job",
    selection=AssetSelection.assets(*_marts_partitioned_by(weekly_partitions)) - NOT_IN_REFRESHES,
    partitions_def=weekly_partitions,
    description="Weekly aggregates for a week or a range of weeks.",
)
monthly_marts_job = define_asset_job(
    "monthly_marts_job",
    selection=AssetSelection.assets(*_marts_partitioned_by(monthly_partitions)) - NOT_IN_REFRESHES,
    partitions_def=monthly_partitions,
    description="Monthly aggregates for a month or a range of months.",
)
dimensions_job = define_asset_job(
    "dimensions_job",
    selection=AssetSelection.assets(*_marts_partitioned_by(None)) - NOT_IN_REFRESHES,
    description="Unpartitioned marts: dimensions and the serving views.",
)
# in the order a refresh runs them: days, then the weeks and months holding them, then the rest
REFRESH_JOBS = [daily_assets_job, weekly_marts_job, monthly_marts_job, dimensions_job]
JOB_OF_PARTITIONING = {
    daily_partitions: daily_assets_job,
    weekly_partitions: weekly_marts_job,
    monthly_partitions: monthly_marts_job,
    None: dimensions_job,
}

freshness_checks_job = define_asset_job(
    "freshness_checks_job",
    selection=AssetSelection.checks(*checks_named("partition_freshness", "slo_budget")),
    description="Per-partition freshness and SLO budgets of the marts (no materialization).",
)


@dataclass(frozen=True)
class RefreshRun:
    """One run of a refresh: a job over a partition key range (None: unpartitioned), of the
    job's assets in `assets` (None: all of them)."""

    job: Any  # what `define_asset_job` returns
    key_range: tuple[str, str] | None
    assets: tuple[AssetKey, ...] | None = None


def refresh_runs(
    asset_graph,
    start: dt.date,
    end: dt.date,
    chunk_days: int = CHUNK_DAYS,
    select: Collection[AssetKey] | None = None,
    jobs: Collection = tuple(REFRESH_JOBS),
    day_bytes: Mapping[dt.date, int] | None = None,
    at_once: int = 1,
) -> list[RefreshRun]:
    """The runs that refresh everything the days [start, end] feed, in the order they must
    run: the daily job in chunks of at most `chunk_days` days (and, with `day_bytes`, of at
    most CHUNK_BYTES of landing files, in a multiple of the `at_once` that run side by side:
    `day_chunks`), then the weeks and months
    holding those days (PERIODS_PER_RUN a run), then the unpartitioned marts. With `select`,
    only those assets (a job none of them is in does not run)."""
    runs: list[RefreshRun] = []
    for partitions_def, job in JOB_OF_PARTITIONING.items():
        if job not in jobs:
            continue
        assets = None
        if select is not None:
            assets = tuple(
                sorted(
                    key
                    for key in select
                    if asset_graph.get(key).is_materializable
                    and asset_graph.get(key).partitions_def == partitions_def
                )
            )
            if not assets:
                continue
        if partitions_def is None:
            runs.append(RefreshRun(job, None, assets))
        elif partitions_def == daily_partitions:
            for first, last in day_chunks(start, end, chunk_days, day_bytes, at_once=at_once):
                runs.append(RefreshRun(job, (first.isoformat(), last.isoformat()), assets))
        else:
            keys = keys_covering(partitions_def, start, end)
            periods = PERIODS_PER_RUN[
                "weekly" if partitions_def == weekly_partitions else "monthly"
            ]
            for key_range in contiguous_key_ranges(partitions_def, keys, periods):
                runs.append(RefreshRun(job, key_range, assets))
    return runs
