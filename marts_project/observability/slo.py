"""Marts as services: each mart's SLIs measured from what happened, against the SLOs of its
contract, with the error budget left, its burn rate and the incidents that burned it.

What is measured, over the rolling window of `window_days` before `now` (time-based SLIs from
when the mart went live: the end of its first backfill, at most a day after its first refresh;
a mart is not charged for the time it was being built):
- **freshness**: the share of time every due day was served with its latest landing data. Day
  D is due `freshness_sla_hours` after it closes (00:00 UTC of D + 1); it is stale from then
  until a refresh of the mart covering D after a raw build read a version of every source's
  file of D; a landing file rewritten later (a restatement, late rows) makes D stale again
  from its arrival + the SLA until a refresh after a raw build read that version (or a later
  one). What was read is what the raw builds recorded (the landing versions of their build
  records), never a comparison of clocks: a file rewritten while its raw step read the old
  version is not served by that step's refresh.
- **completeness**: rows published / rows landed, over the mart's sources and the window's
  days: the raw tables' rows of those days against the same plus their quarantined rows.
- **conformance**: the share of the mart's writes (one per run) whose contract audits all
  passed: a write published with a failed non-blocking audit, or refused by a blocking one,
  is not conformant.
- **success_rate**: the share of runs that touched the mart (materialized it or failed to)
  that materialized it.
- **latency**: hours from each landing arrival to the first refresh of the mart serving it
  (built after a raw build read that version or a later one):
  median and p95 (arrivals not served yet are counted as pending, not timed).

Budget: for an objective T the window may be bad for a share 1 - T; `budget_left` is the part
of that still unspent (1 = untouched, 0 = spent, below 0 = overspent: the SLO is missed);
`burn_rate` is the last day's bad share over the allowed share (above 1 spends the budget
faster than the window allows). Latency is judged as the share of arrivals served slower than
the objective, allowed 5 % (it is a p95).
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from marts_project.core.contracts import Contract, Slo
from marts_project.core.partitions import DayWindow, day_closes, days_fed_by

LATENCY_ALLOWED = 0.05  # a p95 objective: 5 % of arrivals may be slower
BURN_DAYS = 1  # the recent window a burn rate is measured over
CATCH_UP = dt.timedelta(days=1)  # at most this long after its first refresh a mart is live


@dataclass(frozen=True)
class Arrival:
    """A version of a landing file: its source, the day it delivers, when it was written, and
    when a raw build first recorded reading that version (None: no build has read it yet)."""

    source: str
    file_day: dt.date
    at: dt.datetime
    read_at: dt.datetime | None


@dataclass(frozen=True)
class Refresh:
    """A materialization of the mart: which days it covered, when, in which run, and how many
    of its contract audits failed (a non-blocking failure still publishes)."""

    at: dt.datetime
    run_id: str
    days: DayWindow
    audits_failed: int = 0


@dataclass(frozen=True)
class Failure:
    """A run that failed to materialize the mart (`audit_refused`: a blocking audit refused the
    write), with the days it was to cover and the error's first line."""

    at: dt.datetime
    run_id: str
    days: DayWindow
    audit_refused: bool
    message: str


@dataclass
class History:
    """What happened to one mart and its sources, as the records say."""

    arrivals: list[Arrival] = field(default_factory=list)
    # from when every arrival is on record (None: all of them); a day that closed before it
    # was first delivered before the records, so only its later rewrites are judged
    arrivals_from: dt.datetime | None = None
    refreshes: list[Refresh] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    # day -> (rows published, rows quarantined) over the mart's sources
    rows: dict[dt.date, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Incident:
    """Something that spent budget: which SLI, which day, from when to when, and why."""

    sli: str
    day: dt.date | None
    start: dt.datetime
    end: dt.datetime | None  # None: still going on at `now`
    cause: str  # late source | failed run | audit refused | not refreshed | quarantined rows ...
    detail: str
    # when the data the day waited for had arrived (None: not yet): the mart was only behind
    # on it from then on
    delivered: dt.datetime | None = None

    def as_json(self) -> dict:
        return {
            "sli": self.sli,
            "day": self.day.isoformat() if self.day else None,
            "start": self.start.isoformat(),
            "end": self.end.isoformat() if self.end else None,
            "cause": self.cause,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Indicator:
    """One SLI against its objective (None: the contract promises nothing for it)."""

    name: str
    value: float | None  # None: nothing to measure in the window
    objective: float | None
    budget_left: float | None
    burn_rate: float | None

    @property
    def met(self) -> bool | None:
        if self.objective is None or self.budget_left is None:
            return None
        return self.budget_left >= 0

    def as_json(self) -> dict:
        return {
            "sli": self.name,
            "value": _round(self.value),
            "objective": self.objective,
            "budget_left": _round(self.budget_left),
            "burn_rate": _round(self.burn_rate),
            "met": self.met,
        }


@dataclass(frozen=True)
class SloReport:
    """A mart's SLIs, objectives, budgets and incidents over its window at `now`."""

    mart: str
    now: dt.datetime
    window_days: int
    measured_from: dt.datetime | None
    went_live: dt.datetime | None  # the end of its first backfill (None: never refreshed)
    indicators: tuple[Indicator, ...]
    latency_median_hours: float | None
    latency_p95_hours: float | None
    pending_arrivals: int
    incidents: tuple[Incident, ...]

    @property
    def out_of_budget(self) -> list[str]:
        return [i.name for i in self.indicators if i.met is False]

    def indicator(self, name: str) -> Indicator:
        return next(i for i in self.indicators if i.name == name)

    def as_json(self) -> dict:
        return {
            "mart": self.mart,
            "now": self.now.isoformat(),
            "window_days": self.window_days,
            "measured_from": self.measured_from.isoformat() if self.measured_from else None,
            "went_live": self.went_live.isoformat() if self.went_live else None,
            "indicators": [i.as_json() for i in self.indicators],
            "latency_median_hours": _round(self.latency_median_hours),
            "latency_p95_hours": _round(self.latency_p95_hours),
            "pending_arrivals": self.pending_arrivals,
            "out_of_budget": self.out_of_budget,
            "incidents": [i.as_json() for i in self.incidents],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _union_seconds(
    spans: Iterable[tuple[dt.datetime, dt.datetime]], begin: dt.datetime, end: dt.datetime
) -> float:
    """Seconds of [begin, end) covered by the union of `spans`."""
    total, reach = 0.0, begin
    for start, stop in sorted((max(a, begin), min(b, end)) for a, b in spans):
        start = max(start, reach)
        if stop > start:
            total += (stop - start).total_seconds()
            reach = stop
    return total


@dataclass(frozen=True)
class Scope:
    """What a mart's SLIs look at: its contract, its landing sources and their late days."""

    contract: Contract
    sources: tuple[str, ...]
    late_days: dict[str, int]

    def days_fed(self, arrival: Arrival) -> list[dt.date]:
        """The days whose rows a landing file may hold (its own, and earlier ones' late rows)."""
        return days_fed_by(arrival.file_day, self.late_days.get(arrival.source, 0))


def _first_served(history: History, day: dt.date, after: dt.datetime | None) -> dt.datetime | None:
    """When a refresh of the mart covering `day` first happened at or after `after` (None:
    what it waits for was never read, so no refresh serves it)."""
    if after is None:
        return None
    times = [r.at for r in history.refreshes if r.days.start <= day < r.days.end and r.at >= after]
    return min(times, default=None)


def _reads(arrivals: list[Arrival]) -> dict[Arrival, dt.datetime | None]:
    """For each version, when a raw build first read it or a later version of the same file
    (a version rewritten before any build read it is served by what read its successor)."""
    by_file: dict[tuple[str, dt.date], list[Arrival]] = {}
    for a in arrivals:
        by_file.setdefault((a.source, a.file_day), []).append(a)
    reads: dict[Arrival, dt.datetime | None] = {}
    for versions in by_file.values():
        first: dt.datetime | None = None  # earliest read of this version or a later one
        for a in sorted(versions, key=lambda v: v.at, reverse=True):
            if a.read_at is not None and (first is None or a.read_at < first):
                first = a.read_at
            reads[a] = first
    return reads


def freshness_incidents(scope: Scope, history: History, now: dt.datetime) -> list[Incident]:
    """Every span during which a due day was not served with its latest landing data.

    Judged: every day from the first the sources delivered (or the first whose delivery is on
    record) to the last that is due, and any older day the mart serves whose files were
    rewritten."""
    if not history.arrivals:
        return []
    sla = dt.timedelta(hours=scope.contract.freshness_sla_hours)
    fed: dict[dt.date, list[Arrival]] = {}
    for arrival in history.arrivals:
        for day in scope.days_fed(arrival):
            fed.setdefault(day, []).append(arrival)
    since = history.arrivals_from.date() if history.arrivals_from else dt.date.min
    first = min((a.file_day for a in history.arrivals if a.file_day >= since), default=None)
    days = {d for d in fed if day_closes(d) + sla <= now}
    day = first or dt.date.max
    while day < dt.date.max and day_closes(day) + sla <= now:
        days.add(day)
        day += dt.timedelta(days=1)
    reads = _reads(history.arrivals)
    incidents = []
    for day in sorted(days):
        arrivals = fed.get(day, [])
        if first is not None and day >= first:
            incidents += _day_incidents(scope, history, reads, day, arrivals, sla, now)
        elif _first_served(history, day, dt.datetime.min.replace(tzinfo=dt.UTC)):
            # an older day the mart serves (a day it never built is not part of the service)
            incidents += _rewrite_incidents(history, reads, day, arrivals, None, sla, now)
    return incidents


def _day_incidents(
    scope: Scope,
    history: History,
    reads: dict[Arrival, dt.datetime | None],
    day: dt.date,
    arrivals: list[Arrival],
    sla: dt.timedelta,
    now: dt.datetime,
) -> list[Incident]:
    """The day's first serving against its due time, then each later rewrite of its files."""
    due = day_closes(day) + sla
    own: dict[str, Arrival] = {}  # each source's first version of its file of the day
    for a in arrivals:
        if a.file_day == day and (a.source not in own or a.at < own[a.source].at):
            own[a.source] = a
    missing = [s for s in scope.sources if s not in own]
    delivered = None if missing else max(a.at for a in own.values())
    read = [reads[a] for a in own.values()]
    ready = None if missing or None in read else max(r for r in read if r is not None)
    served = _first_served(history, day, ready)
    incidents = []
    if served is None or served > due:
        why = _cause(history, day, due, served or now, delivered, missing)
        incidents.append(Incident("freshness", day, due, served, *why, delivered))
    if served is not None:
        incidents += _rewrite_incidents(history, reads, day, arrivals, served, sla, now)
    return incidents


def _rewrite_incidents(
    history: History,
    reads: dict[Arrival, dt.datetime | None],
    day: dt.date,
    arrivals: list[Arrival],
    served: dt.datetime | None,
    sla: dt.timedelta,
    now: dt.datetime,
) -> list[Incident]:
    """Each version of the day's files that what was `served` (None: before the records) had
    not read makes the day stale from its arrival + the SLA until a refresh after a raw build
    read it (or a later version)."""
    incidents = []
    for a in sorted(arrivals, key=lambda a: a.at):
        read = reads[a]
        if served is not None and read is not None and read <= served:
            continue  # what was served already held it
        due = a.at + sla
        fixed = _first_served(history, day, read)
        if due < now and (fixed is None or fixed > due):
            cause, detail = _cause(history, day, due, fixed or now, None, [])
            if cause == "not refreshed":
                detail = f"{a.source} rewrote its file of {a.file_day}; no refresh in time"
            incidents.append(Incident("freshness", day, due, fixed, cause, detail, a.at))
    return incidents


def _cause(
    history: History,
    day: dt.date,
    start: dt.datetime,
    until: dt.datetime,
    delivered: dt.datetime | None,
    missing: list[str],
) -> tuple[str, str]:
    """Why `day` was stale from `start`: a source late, a run failed, an audit refused."""
    if missing:
        return "late source", f"{', '.join(missing)} had not delivered {day}"
    if delivered is not None and delivered > start:
        return "late source", f"the last file of {day} arrived {delivered:%Y-%m-%d %H:%M} UTC"
    failed = [f for f in history.failures if f.days.start <= day < f.days.end and f.at <= until]
    if refused := [f for f in failed if f.audit_refused]:
        return "audit refused", refused[-1].message
    if failed:
        return "failed run", failed[-1].message
    return "not refreshed", "no run refreshed the day in time"


def _ratio(good: float, total: float) -> float | None:
    return good / total if total else None


def _budget(value: float | None, objective: float | None, allowed: float | None) -> float | None:
    if value is None or objective is None or not allowed:
        return None
    return 1 - (1 - value) / allowed


class _Window:
    """The SLIs of one history measured between `begin` and `now`."""

    def __init__(
        self,
        scope: Scope,
        history: History,
        begin: dt.datetime,
        now: dt.datetime,
        days_from: dt.datetime,
    ) -> None:
        self.scope, self.history, self.begin, self.now = scope, history, begin, now
        self.days_from = days_from  # counts (days, runs, writes, arrivals) start at the window

    def freshness(self, incidents: list[Incident]) -> float | None:
        length = (self.now - self.begin).total_seconds()
        spans = [(i.start, i.end or self.now) for i in incidents if i.sli == "freshness"]
        return 1 - _union_seconds(spans, self.begin, self.now) / length if length > 0 else None

    def days(self) -> list[dt.date]:
        return [d for d in self.history.rows if self.days_from <= day_closes(d) <= self.now]

    def completeness(self) -> float | None:
        rows = [self.history.rows[d] for d in self.days()]
        return _ratio(sum(p for p, _ in rows), sum(p + q for p, q in rows))

    def writes(self) -> dict[str, bool]:
        """Each run's write of the mart in the window: conformant or not."""
        writes: dict[str, bool] = {}
        for r in self.history.refreshes:
            if r.at >= self.days_from:
                writes[r.run_id] = writes.get(r.run_id, True) and r.audits_failed == 0
        for f in self.history.failures:
            if f.at >= self.days_from and f.audit_refused:
                writes[f.run_id] = False
        return writes

    def conformance(self) -> float | None:
        writes = self.writes()
        return _ratio(sum(writes.values()), len(writes))

    def runs(self) -> tuple[set[str], set[str]]:
        """(runs that touched the mart, runs that failed to materialize it) in the window."""
        failed = {f.run_id for f in self.history.failures if f.at >= self.days_from}
        touched = failed | {r.run_id for r in self.history.refreshes if r.at >= self.days_from}
        return touched, failed

    def success_rate(self) -> float | None:
        touched, failed = self.runs()
        return _ratio(len(touched - failed), len(touched))

    def latencies(self) -> tuple[list[float], int]:
        """Hours from each arrival in the window to the refresh that served every day it feeds;
        and how many arrivals are not served yet."""
        first_day = min((a.file_day for a in self.history.arrivals), default=None)
        reads = _reads(self.history.arrivals)
        hours, pending = [], 0
        for a in self.history.arrivals:
            if not self.days_from <= a.at <= self.now:
                continue
            served = [
                _first_served(self.history, d, reads[a])
                for d in self.scope.days_fed(a)
                if first_day and d >= first_day
            ]
            if not served or None in served:
                pending += 1
            else:
                hours.append((max(served) - a.at).total_seconds() / 3600)
        return hours, pending


def went_live(history: History, incidents: list[Incident], now: dt.datetime) -> dt.datetime | None:
    """When the mart's service began: the first moment after its first refresh at which it
    served every due day whose data it already had (the end of its first backfill), or a day
    after that first refresh, whichever comes first. A source that had not delivered does not
    delay it: that is an outage of the live mart. A mart never refreshed is not live yet."""
    first = min((r.at for r in history.refreshes), default=None)
    if first is None:
        return None
    live, deadline = first, first + CATCH_UP
    for incident in sorted(incidents, key=lambda i: i.start):
        had_data = incident.delivered is not None and incident.delivered <= live
        if had_data and incident.start <= live < (incident.end or now):
            live = incident.end or now
    return min(live, deadline)


def measure(scope: Scope, history: History, now: dt.datetime) -> SloReport:
    """The mart's SLIs over its SLO window at `now`, against its objectives."""
    slo = scope.contract.slo or Slo()
    start = now - dt.timedelta(days=slo.window_days)
    incidents = freshness_incidents(scope, history, now)
    live = went_live(history, incidents, now)
    begin = max(start, live) if live else now
    recent = max(now - dt.timedelta(days=BURN_DAYS), begin)
    window = _Window(scope, history, begin, now, start)
    last_day = _Window(scope, history, recent, now, now - dt.timedelta(days=BURN_DAYS))
    incidents = [i for i in incidents if (i.end or now) > begin]
    hours, pending = window.latencies()
    recent_hours, _ = last_day.latencies()
    indicators = [
        _indicator(name, getattr(slo, name), measure_all, measure_recent)
        for name, measure_all, measure_recent in (
            ("freshness", window.freshness(incidents), last_day.freshness(incidents)),
            ("completeness", window.completeness(), last_day.completeness()),
            ("conformance", window.conformance(), last_day.conformance()),
            ("success_rate", window.success_rate(), last_day.success_rate()),
        )
    ]
    indicators.append(_latency_indicator(slo.latency_p95_hours, hours, recent_hours))
    incidents += _other_incidents(window)
    return SloReport(
        mart=scope.contract.name,
        now=now,
        window_days=slo.window_days,
        measured_from=live and begin,
        went_live=live,
        indicators=tuple(indicators),
        latency_median_hours=statistics.median(hours) if hours else None,
        latency_p95_hours=_p95(hours),
        pending_arrivals=pending,
        incidents=tuple(sorted(incidents, key=lambda i: i.start)),
    )


def _indicator(
    name: str, objective: float | None, value: float | None, recent: float | None
) -> Indicator:
    allowed = 1 - objective if objective is not None else None
    burn = None if recent is None or not allowed else (1 - recent) / allowed
    return Indicator(name, value, objective, _budget(value, objective, allowed), burn)


def _p95(hours: list[float]) -> float | None:
    """The 95th percentile (nearest rank) of `hours`."""
    if not hours:
        return None
    ordered = sorted(hours)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def _latency_indicator(
    objective: float | None, hours: list[float], recent: list[float]
) -> Indicator:
    """Latency as a ratio: the share of arrivals served within the objective (5 % may not)."""
    if objective is None:
        return Indicator("latency", _p95(hours), None, None, None)

    def slow(values: list[float]) -> float | None:
        return _ratio(sum(h > objective for h in values), len(values))

    share, recent_share = slow(hours), slow(recent)
    budget = None if share is None else 1 - share / LATENCY_ALLOWED
    burn = None if recent_share is None else recent_share / LATENCY_ALLOWED
    return Indicator("latency", _p95(hours), objective, budget, burn)


def _other_incidents(window: _Window) -> list[Incident]:
    """What spent completeness, conformance and success-rate budget in the window."""
    incidents = []
    for day in sorted(window.days()):
        published, quarantined = window.history.rows[day]
        if quarantined:
            incidents.append(
                Incident(
                    "completeness",
                    day,
                    day_closes(day),
                    None,
                    "quarantined rows",
                    f"{quarantined} of {published + quarantined} landed rows quarantined",
                )
            )
    seen: set[str] = set()  # a range run records one event per partition: one incident a run
    for f in window.history.failures:
        if f.at >= window.days_from and f.run_id not in seen:
            seen.add(f.run_id)
            cause = "audit refused" if f.audit_refused else "failed run"
            sli = "conformance" if f.audit_refused else "success_rate"
            incidents.append(Incident(sli, None, f.at, f.at, cause, f"run {f.run_id}: {f.message}"))
    for r in window.history.refreshes:
        if r.at >= window.days_from and r.audits_failed and r.run_id not in seen:
            seen.add(r.run_id)
            incidents.append(
                Incident(
                    "conformance",
                    None,
                    r.at,
                    r.at,
                    "audit failed",
                    f"run {r.run_id} published with {r.audits_failed} failed non-blocking audits",
                )
            )
    return incidents
