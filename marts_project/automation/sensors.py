"""The landing sensor: new or rewritten landing files request exactly their raw partitions."""

import datetime as dt
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass

from dagster import (
    AssetKey,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from marts_project.partitions import daily_partitions, range_tags
from marts_project.raw.sources import source_specs
from marts_project.resources.landing import LandingZone, parse_key

MAX_DAYS_PER_RUN = 90  # one run per contiguous range of days, at most this long


@dataclass(frozen=True)
class LandingPlan:
    runs: list[RunRequest]
    ignored: list[str]  # not `<source>/<YYYY-MM-DD>.csv` of a known source: never read
    deferred: list[str]  # a day that is not a partition yet (or before the first): retried


def plan_runs(changed: dict[str, str], known_days: set[str]) -> LandingPlan:
    """Group changed landing files into as few raw runs as possible.

    Days with the same set of changed sources are requested together, one run per contiguous
    range of days.
    """
    sources = source_specs()
    by_day: dict[dt.date, set[str]] = defaultdict(set)
    ignored, deferred = [], []
    for key in changed:
        parsed = parse_key(key)
        if parsed is None or parsed[0] not in sources:
            ignored.append(key)
        elif parsed[1].isoformat() not in known_days:
            deferred.append(key)
        else:
            by_day[parsed[1]].add(parsed[0])
    runs = []
    by_sources: dict[frozenset[str], list[dt.date]] = defaultdict(list)
    for day, names in by_day.items():
        by_sources[frozenset(names)].append(day)
    for names, days in sorted(by_sources.items(), key=lambda item: min(item[1])):
        for start, end in _contiguous(sorted(days)):
            keys = sorted(
                f"{n}/{d}.csv"
                for n in names
                for d in (start + dt.timedelta(days=i) for i in range((end - start).days + 1))
            )
            digest = hashlib.sha256(
                json.dumps([(k, changed[k]) for k in keys]).encode()
            ).hexdigest()[:16]
            runs.append(
                RunRequest(
                    run_key=f"landing:{start}:{end}:{digest}",
                    asset_selection=[AssetKey(["raw", f"raw_{n}"]) for n in sorted(names)],
                    tags={
                        **range_tags(start.isoformat(), end.isoformat()),
                        "marts/trigger": "landing_sensor",
                    },
                )
            )
    return LandingPlan(runs, sorted(ignored), sorted(deferred))


def _contiguous(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    ranges: list[tuple[dt.date, dt.date]] = []
    for day in days:
        if (
            ranges
            and day - ranges[-1][1] == dt.timedelta(days=1)
            and ((day - ranges[-1][0]).days < MAX_DAYS_PER_RUN)
        ):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def build_sensors(interval_seconds: int = 30, running: bool = True) -> list:
    """The landing sensor and the automation sensor, on by default (`MARTS_SENSORS=off` starts
    them stopped, e.g. for a deployment that only runs what operators launch)."""
    status = DefaultSensorStatus.RUNNING if running else DefaultSensorStatus.STOPPED

    @sensor(
        name="landing_sensor",
        minimum_interval_seconds=interval_seconds,
        default_status=status,
        asset_selection=AssetSelection.groups("raw"),
        description="Requests the raw partitions of new or rewritten landing files, past days too.",
    )
    def landing_sensor(context: SensorEvaluationContext, landing: LandingZone):
        """Cursor: the fingerprint of every landing file already requested (survives restarts)."""
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        current = landing.fingerprints()
        changed = {key: fp for key, fp in current.items() if seen.get(key) != fp}
        if not changed:
            return SkipReason("no new or rewritten landing files")
        plan = plan_runs(changed, set(daily_partitions.get_partition_keys()))
        if plan.ignored:
            context.log.warning(
                f"ignored {len(plan.ignored)} landing files that are not "
                f"<source>/<YYYY-MM-DD>.csv of a known source: {', '.join(plan.ignored[:10])}"
            )
        deferred = set(plan.deferred)
        handled = {k: fp for k, fp in changed.items() if k not in deferred}
        return SensorResult(
            run_requests=plan.runs, cursor=json.dumps({**seen, **handled}, sort_keys=True)
        )

    automation_sensor = AutomationConditionSensorDefinition(
        "automation_sensor",
        target=AssetSelection.all(),
        default_status=status,
        minimum_interval_seconds=interval_seconds,
        description="Carries refreshed partitions downstream (propagate_updates on every table).",
    )
    return [landing_sensor, automation_sensor]
