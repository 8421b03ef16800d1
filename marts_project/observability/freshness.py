"""Per-partition freshness: for each day in a mart's SLA window, is what serving holds built
from the landing files as they are now (the planner's answer from the lake's build records,
not a comparison of clocks), and if not, for how long has it waited?

Dagster's FreshnessPolicy judges an asset by its latest materialization of *any* partition, so
a backfill of an old day makes a mart look fresh while yesterday's restatement waits. This
looks at every day on its own.
"""

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass

from dagster import AssetKey

from marts_project.checks.registry import FRESHNESS_WINDOW_DAYS
from marts_project.core.lineage import upstream_sources
from marts_project.core.partitions import DayWindow, files_feeding, last_closed_day, period_of
from marts_project.core.versions import BuildRecord
from marts_project.marts.common import Mart
from marts_project.observability.failures import failed_days_in_lineage
from marts_project.raw.sources import source_specs
from marts_project.resources.iceberg_io import table_identifier
from marts_project.resources.landing import LandingSnapshot, LandingZone
from marts_project.resources.serving import ServingDatabase

WINDOW_DAYS = FRESHNESS_WINDOW_DAYS  # the days the partition_freshness check judges


@dataclass(frozen=True)
class PartitionFreshness:
    day: dt.date
    status: str  # fresh | stale | overdue | not_built | no_landing_data | failed
    landing_changed_at: dt.datetime | None
    refreshed_at: dt.datetime | None
    failed_asset: str | None = None  # `failed`: the asset of its lineage whose run failed

    def as_json(self) -> dict:
        return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in asdict(self).items()}


def _files_feeding(source: str, day: dt.date) -> list[dt.date]:
    """The days whose landing files of `source` may hold rows of `day` (late rows)."""
    return files_feeding(day, source_specs()[source].late_days)


def judged_days(now: dt.datetime, window_days: int = WINDOW_DAYS) -> list[dt.date]:
    """The `window_days` closed days before `now`, oldest first: the days freshness judges."""
    last = last_closed_day(now)
    return [last - dt.timedelta(days=i) for i in reversed(range(window_days))]


def failures_window(now: dt.datetime, window_days: int = WINDOW_DAYS) -> DayWindow:
    """The days whose partitions can hold a failure that touches a judged day: the judged days
    and, after them, the latest late file of any source (one window for every mart, so the
    checks of a run share their reads)."""
    days = judged_days(now, window_days)
    late = max(spec.late_days for spec in source_specs().values())
    return DayWindow(days[0], days[-1] + dt.timedelta(days=late + 1))


def partition_freshness(
    mart: Mart,
    serving: ServingDatabase,
    landing: LandingZone | LandingSnapshot,
    now: dt.datetime,
    window_days: int = WINDOW_DAYS,
    failed: Mapping[str, list[str]] | None = None,
    *,
    stale: Collection[tuple[AssetKey, str | None]],
    built: Mapping[str | None, BuildRecord],
) -> list[PartitionFreshness]:
    """Freshness of each of the `window_days` closed days before `now` (oldest first): a day
    the serving database holds is fresh unless the mart's partition holding it is out of date
    (`stale`: the planner's (asset, partition) pairs, `planning/planner.py`: a landing file
    that feeds it is new or rewritten since it was read, code changed, an input rebuilt since);
    and whose served copy is the one its latest build published (`built`: the mart's build
    records) (a failed serving refresh leaves an older copy, which is not fresh);
    an out-of-date day is overdue once its landing data changed more than the SLA ago.

    A day that a failed run in the mart's lineage left unrepaired (`failed`: asset ->
    partitions, `failures.failed_partitions`) is `failed`, whatever the clocks say: the
    refresh its landing data needs did not happen.

    When each landing file was written comes from one listing of the zone (`landing`, or a
    snapshot of it the caller took for several marts), not a request per file and day."""
    files = landing if isinstance(landing, LandingSnapshot) else landing.snapshot()
    contract = mart.contract
    days = judged_days(now, window_days)
    last = days[-1]
    first_period = period_of(contract.partitions_def, days[0]).start
    refreshed = serving.refreshed_by_day(
        table_identifier(mart.asset.key), contract.partition_column, first_period, last
    )
    sources = upstream_sources(contract.name) if contract.kind != "view" else ()
    sla = dt.timedelta(hours=contract.freshness_sla_hours)
    late = {s: source_specs()[s].late_days for s in sources}
    broken = failed_days_in_lineage(
        contract.name, contract.partitions_def, failed or {}, days, late
    )
    result = []
    for day in days:
        stamps = [
            t
            for s in sources
            for file_day in _files_feeding(s, day)
            if (t := files.modified_at(s, file_day)) is not None
        ]
        changed = max(stamps) if stamps else None
        period = period_of(contract.partitions_def, day).start
        done = refreshed.get(period)
        partition = period.isoformat() if contract.partitions_def is not None else None
        if day in broken:
            status = "failed"
        elif changed is None:
            status = "no_landing_data"
        elif (
            done is not None
            and (mart.asset.key, partition) not in stale
            and ((record := built.get(partition)) is None or done >= record.at)
        ):
            status = "fresh"
        elif now - changed > sla:
            status = "overdue"
        else:
            status = "stale" if done is not None else "not_built"
        result.append(PartitionFreshness(day, status, changed, done, broken.get(day)))
    return result
