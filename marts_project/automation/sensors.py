"""The landing sensor: new or rewritten landing files request exactly their raw partitions."""

import datetime as dt
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from marts_project.automation.audit_sensor import build_audit_sensor
from marts_project.lineage import asset_key_for_table
from marts_project.partitions import (
    CHUNK_DAYS,
    DayWindow,
    contiguous_key_ranges,
    daily_partitions,
    range_tags,
)
from marts_project.raw.sources import source_specs
from marts_project.resources.landing import LandingZone, parse_key

WAITING = "waiting:"  # cursor prefix of a file whose day is not a partition yet (told once)


def _day_of(key: str) -> str | None:
    parsed = parse_key(key)
    return parsed[1].isoformat() if parsed else None


@dataclass(frozen=True)
class LandingPlan:
    runs: list[RunRequest]
    ignored: list[str]  # not `<source>/<YYYY-MM-DD>.csv` of a known source: never read
    deferred: list[str]  # a day that is not a partition yet (or before the first): retried


def plan_runs(
    changed: dict[str, str], known_days: set[str], landed: set[str] | None = None
) -> LandingPlan:
    """Group changed landing files into as few raw runs as possible.

    A file requests its own day and those of the `late_days` before it whose own file has
    landed (`landed`: every landing key; its late rows belong there; a day whose own file has
    not landed is built when it does, and then reads this one).
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
        else:  # the file's own day, and the earlier days its late rows belong to
            source, own_day = parsed
            for day in sources[source].days_fed_by(own_day):
                own_file = day == own_day or LandingZone.key(source, day) in (landed or ())
                if own_file and day.isoformat() in known_days:
                    by_day[day].add(source)
    runs = []
    by_sources: dict[frozenset[str], list[dt.date]] = defaultdict(list)
    for day, names in by_day.items():
        by_sources[frozenset(names)].append(day)
    for names, days in sorted(by_sources.items(), key=lambda item: min(item[1])):
        day_keys = [d.isoformat() for d in days]
        for first, last in contiguous_key_ranges(daily_partitions, day_keys, CHUNK_DAYS):
            start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
            keys = sorted(
                LandingZone.key(n, d)
                for n in names
                for d in DayWindow(start, end + dt.timedelta(days=1)).days
            )
            digest = hashlib.sha256(
                json.dumps([(k, changed.get(k, "")) for k in keys]).encode()
            ).hexdigest()[:16]
            runs.append(
                RunRequest(
                    run_key=f"landing:{start}:{end}:{digest}",
                    asset_selection=[asset_key_for_table(f"raw_{n}") for n in sorted(names)],
                    tags={
                        **range_tags(start.isoformat(), end.isoformat()),
                        "marts/trigger": "landing_sensor",
                    },
                )
            )
    return LandingPlan(runs, sorted(ignored), sorted(deferred))


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
        """Cursor: the fingerprint of every landing file already requested (survives restarts),
        or `waiting:<fingerprint>` for a file whose day is not a partition yet."""
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        current = landing.fingerprints()
        known = set(daily_partitions.get_partition_keys())
        changed = {
            key: fp
            for key, fp in current.items()
            if seen.get(key) != fp and (seen.get(key) != WAITING + fp or _day_of(key) in known)
        }
        if not changed:
            return SkipReason("no new or rewritten landing files")
        plan = plan_runs(changed, known, set(current))
        if plan.ignored:
            context.log.warning(
                f"ignored {len(plan.ignored)} landing files that are not "
                f"<source>/<YYYY-MM-DD>.csv of a known source: {', '.join(plan.ignored[:10])}"
            )
        if plan.deferred:
            first = daily_partitions.get_first_partition_key()
            early = [k for k in plan.deferred if (_day_of(k) or "") < first]
            later = [k for k in plan.deferred if k not in early]
            if early:
                context.log.error(
                    f"{len(early)} landing files are for days before the first partition "
                    f"({first}) and are never built: {', '.join(early[:10])}"
                )
            if later:
                context.log.warning(
                    f"{len(later)} landing files are for days that have not closed yet; they "
                    f"are built once their day is a partition: {', '.join(later[:10])}"
                )
        deferred = set(plan.deferred)
        handled = {k: (WAITING + fp if k in deferred else fp) for k, fp in changed.items()}
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
    return [landing_sensor, automation_sensor, build_audit_sensor(interval_seconds, running)]
