"""What is out of date and why, per asset and partition, from what the lake records of each
partition (`versions.py`), the landing zone and the code: the one answer `marts plan` prints
and the landing sensor requests from, so `marts sync` and the daemon carry out the plan.

A partition is out of date, in this order of precedence:
- `upstream out of date`: a partition it reads is out of date (it follows once that is built);
- `blocked`: a partition it reads failed a blocking check when it was written (nothing builds
  on it until a write of that partition passes);
- `never built`: no build record (a raw day whose landing file has landed; a derived
  partition whose inputs exist);
- `code changed`: its table's code version is not the one it was built with;
- `landing changed`: a landing file that feeds it is new or rewritten since it was read;
- `upstream rebuilt`: a partition it reads was rebuilt after it.
The first follows by declarative automation (`conditions.propagate_updates`) once its inputs
are rebuilt, the second waits for a write that passes; the others are *origins*, which the
landing sensor requests when automation has not (Dagster's automation sees updates since its
own cursor, not code or landing versions, nor what happened before a fresh instance:
`docs/versions.md`). Failed partitions are listed apart: automation retries them at its retry
interval.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from dagster import AssetKey, AssetsDefinition, RunRequest, TimeWindowPartitionsDefinition

from marts_project.core.lineage import column_reads, sql_inputs
from marts_project.core.partitions import (
    PERIODS_PER_RUN,
    closed_period_key,
    contiguous_key_ranges,
    daily_partitions,
    files_feeding,
    input_keys,
    partition_keys,
    partitioning_of,
    range_tags,
)
from marts_project.core.versions import (
    CODE_PARTS_METADATA,
    COLUMN_PARTS_METADATA,
    ON_CHANGE_METADATA,
    BuildRecord,
    changed_parts,
    column_versions,
    input_key,
)
from marts_project.raw.sources import source_specs
from marts_project.resources.iceberg import IcebergWarehouse
from marts_project.resources.landing import LandingSnapshot, LandingZone, parse_key
from marts_project.resources.serving import ServingDatabase

UPSTREAM_STALE = "upstream out of date"
NEVER_BUILT = "never built"
CODE_CHANGED = "code changed"
LANDING_CHANGED = "landing changed"
UPSTREAM_REBUILT = "upstream rebuilt"
BLOCKED = "blocked"
# what the landing sensor requests (automation carries `upstream out of date` downstream)
ORIGINS = (NEVER_BUILT, CODE_CHANGED, LANDING_CHANGED, UPSTREAM_REBUILT)


@dataclass(frozen=True)
class Stale:
    """One out-of-date partition (None: an unpartitioned asset), why, and what it last cost."""

    asset: AssetKey
    partition: str | None
    reason: str
    detail: str
    rows: int = 0
    seconds: float = 0.0


@dataclass
class Plan:
    """Out-of-date partitions in dependency order, and the failed ones automation retries."""

    stale: list[Stale] = field(default_factory=list)
    failed: dict[str, list[str]] = field(default_factory=dict)
    # built with other code and left so by the contract's `on_change` (not out of date)
    kept: list[Stale] = field(default_factory=list)

    @property
    def origins(self) -> list[Stale]:
        return [s for s in self.stale if s.reason in ORIGINS]

    def to_json(self) -> dict:
        return {
            "stale": [
                {
                    "asset": s.asset.to_user_string(),
                    "partition": s.partition,
                    "reason": s.reason,
                    "detail": s.detail,
                    "estimated_rows": s.rows,
                    "estimated_seconds": round(s.seconds, 3),
                }
                for s in self.stale
            ],
            "failed": self.failed,
            "kept": [
                {"asset": s.asset.to_user_string(), "partition": s.partition, "detail": s.detail}
                for s in self.kept
            ],
        }


@dataclass(frozen=True)
class AssetFacts:
    """What the planner needs of one asset: its inputs, partitioning and code version."""

    key: AssetKey
    parents: tuple[AssetKey, ...]
    partitions_def: TimeWindowPartitionsDefinition | None
    code: str
    parts: dict[str, str]
    stored: bool  # keeps build records: an Iceberg table, or a serving view (in its comment)
    source: str | None = None  # raw assets: the landing source they read
    on_change: str = "all"  # the contract's rule for a code change: all, manual, last N days
    view: bool = False  # a serving view: its record is in the serving database
    # derived tables: their SQL and what defines each column (`versions.column_versions`)
    column_parts: dict | None = None


def facts_of(assets: Iterable[AssetsDefinition]) -> dict[AssetKey, AssetFacts]:
    """Every asset of some asset definitions (a deployment's `Definitions.assets`), as the
    planner sees it."""
    facts = {}
    for assets_def in assets:
        for key in assets_def.keys:
            metadata = assets_def.metadata_by_key.get(key, {})
            source = metadata.get("landing/source")
            parts = metadata.get(CODE_PARTS_METADATA)
            on_change = metadata.get(ON_CHANGE_METADATA)
            column_parts = metadata.get(COLUMN_PARTS_METADATA)
            facts[key] = AssetFacts(
                key,
                tuple(sorted(assets_def.asset_deps.get(key, ()))),
                assets_def.partitions_def,
                assets_def.code_versions_by_key.get(key) or "",
                dict(parts.data) if parts is not None else {},
                CODE_PARTS_METADATA in metadata,
                str(getattr(source, "value", source)) if source else None,
                str(getattr(on_change, "value", on_change)) if on_change else "all",
                "view" in assets_def.specs_by_key[key].kinds,
                dict(column_parts.data) if column_parts is not None else None,
            )
    return facts


def lake_records(
    warehouse: IcebergWarehouse,
    serving: ServingDatabase,
    facts: Mapping[AssetKey, AssetFacts],
    run_id: str | None = None,
) -> dict:
    """Asset -> partition -> build record: a table's from its Iceberg properties (one table
    load; once per run with `run_id`, `IcebergWarehouse.build_records`), a serving view's from
    its comment in the serving database."""
    records: dict = {}
    for key, asset in facts.items():
        identifier = ".".join(key.path)
        if asset.view:
            text = serving.view_record(identifier)
            record = BuildRecord.decode(text) if text else None
            records[key] = {None: record} if record else {}
        elif asset.stored:
            records[key] = warehouse.build_records(identifier, run_id)
    return records


def plan_for(
    assets: Iterable[AssetsDefinition],
    warehouse: IcebergWarehouse,
    serving: ServingDatabase,
    landing: LandingZone,
    failed: Mapping[str, list[str]] | None = None,
    select: Iterable[AssetKey] | None = None,
) -> Plan:
    """The plan of a deployment now: its lake's records, its landing zone, its code."""
    facts = facts_of(assets)
    records = lake_records(warehouse, serving, facts)
    return make_plan(facts, records, landing.fingerprints(), failed, select, warehouse.column_names)


def stale_partitions(
    assets: Iterable[AssetsDefinition],
    warehouse: IcebergWarehouse,
    serving: ServingDatabase,
    landing: LandingZone | LandingSnapshot,
    of: AssetKey | None = None,
    run_id: str | None = None,
) -> set[tuple[AssetKey, str | None]]:
    """Every out-of-date (asset, partition) now, of `of` and what it is computed from only
    when given (a mart's check reads its lineage's records, not the whole lake's): what
    freshness judges a served day by. With `run_id`, each table's records are read once for
    the run (the checks of one run)."""
    facts = facts_of(assets)
    if of is not None:
        facts = {k: facts[k] for k in _lineage(facts, of)}
    records = lake_records(warehouse, serving, facts, run_id)
    plan = make_plan(facts, records, landing.fingerprints(), columns_of=warehouse.column_names)
    return {(s.asset, s.partition) for s in plan.stale}


def _lineage(facts: Mapping[AssetKey, AssetFacts], key: AssetKey) -> set[AssetKey]:
    """`key` and every asset it is computed from."""
    found, todo = set(), [key]
    while todo:
        current = todo.pop()
        if current in facts and current not in found:
            found.add(current)
            todo.extend(facts[current].parents)
    return found


def ranges(plan: Plan, facts: Mapping[AssetKey, AssetFacts]) -> list[tuple[Stale, str]]:
    """The plan's partitions as (first item with the run's rows and seconds, "first .. last")
    per run of consecutive partitions of one asset with the same reason, for people to read."""
    rows: list[list] = []
    for item in plan.stale:
        partitions_def = facts[item.asset].partitions_def
        last = rows[-1] if rows else None
        if (
            last
            and last[0].asset == item.asset
            and last[0].reason == item.reason
            and partitions_def is not None
            and _next_key(partitions_def, last[2]) == item.partition
        ):
            last[2] = item.partition
            last[3] += item.rows
            last[4] += item.seconds
        else:
            rows.append([item, item.partition, item.partition, item.rows, item.seconds])
    return [
        (
            replace(first, rows=rows_, seconds=seconds),
            "whole table" if start is None else start if start == end else f"{start} .. {end}",
        )
        for first, start, end, rows_, seconds in rows
    ]


def _next_key(partitions_def: TimeWindowPartitionsDefinition, key: str) -> str | None:
    window = partitions_def.time_window_for_partition_key(key)
    try:
        return partitions_def.get_partition_key_for_timestamp(window.end.timestamp())
    except Exception:  # the last partition
        return None


def _toposorted(facts: Mapping[AssetKey, AssetFacts]) -> list[AssetKey]:
    order: list[AssetKey] = []
    seen: set[AssetKey] = set()

    def visit(key: AssetKey) -> None:
        if key in seen or key not in facts:
            return
        seen.add(key)
        for parent in facts[key].parents:
            visit(parent)
        order.append(key)

    for key in sorted(facts):
        visit(key)
    depth: dict[AssetKey, int] = {}
    for key in order:  # parents come first
        depth[key] = 1 + max((depth[p] for p in facts[key].parents if p in depth), default=-1)
    return sorted(order, key=lambda k: (depth[k], k.to_user_string()))


def _days_of(partitions_def: TimeWindowPartitionsDefinition, key: str) -> list[str]:
    window = partitions_def.time_window_for_partition_key(key)
    day, days = window.start.date(), []
    while day < window.end.date():
        days.append(day.isoformat())
        day += dt.timedelta(days=1)
    return days


def make_plan(
    facts: Mapping[AssetKey, AssetFacts],
    records: Mapping[AssetKey, Mapping[str | None, BuildRecord]],
    landing: Mapping[str, str],
    failed: Mapping[str, list[str]] | None = None,
    select: Iterable[AssetKey] | None = None,
    columns_of: Callable[[str], list[str]] | None = None,
) -> Plan:
    """The plan for assets `facts` given their build `records` and the `landing` zone
    (key -> current version); `select` limits what is listed (its inputs still count);
    `columns_of` gives a table's columns now, to foresee which columns a code change alters
    (without it, a reader of a changed table is always out of date)."""
    known = set(partition_keys(daily_partitions))
    stale: dict[tuple[AssetKey, str | None], Stale] = {}
    kept: list[Stale] = []
    universe: dict[AssetKey, set[str | None]] = {}
    ordered = _toposorted(facts)
    for key in ordered:
        asset = facts[key]
        built = records.get(key, {})
        if asset.source is not None:
            candidates = _raw_partitions(asset.source, landing, known)
        else:
            candidates = _derived_partitions(asset, facts, universe)
        universe[key] = set(candidates) | set(built)
        for partition in sorted(candidates, key=lambda p: p or ""):
            inputs = _inputs_of(asset, partition, facts, universe)
            record = built.get(partition)
            behind = [
                parent
                for parent, p in inputs
                if (parent, p) in stale
                and not _unaffected(stale[(parent, p)], record, facts, records, columns_of)
            ]
            blocking = [
                f"{parent.to_user_string()} {p or ''}".strip() + f": {', '.join(r.blocked)} failed"
                for parent, p in inputs
                if (r := records.get(parent, {}).get(p)) is not None and r.blocked
            ]
            if behind:
                found = (UPSTREAM_STALE, behind[0].to_user_string())
            elif blocking:
                found = (BLOCKED, blocking[0])
            elif asset.stored:
                found = _judge(asset, partition, record, inputs, records, landing)
            else:  # an asset that keeps no record: only its inputs' rebuilds carry to it
                found = None
            if found is None:
                continue
            reason, detail = found
            rows, seconds = _estimate(built, partition)
            item = Stale(key, partition, reason, detail, rows, seconds)
            if reason == CODE_CHANGED and _kept(asset, partition):
                kept.append(replace(item, detail=f"{detail} (on_change: {asset.on_change})"))
            else:
                stale[(key, partition)] = item
    chosen = set(select) if select is not None else None
    listed = [s for s in stale.values() if chosen is None or s.asset in chosen]
    position = {k: i for i, k in enumerate(ordered)}
    listed.sort(key=lambda s: (position[s.asset], s.partition or ""))
    failures = {
        k: v
        for k, v in (failed or {}).items()
        if chosen is None or AssetKey.from_user_string(k) in chosen
    }
    return Plan(listed, failures, [k for k in kept if chosen is None or k.asset in chosen])


def _kept(asset: AssetFacts, partition: str | None) -> bool:
    """A code-changed partition the contract's `on_change` leaves as it was built: all under
    `manual`, those ending before the last N closed days under `last N days`."""
    if asset.on_change == "manual":
        return True
    if not asset.on_change.startswith("last ") or asset.partitions_def is None:
        return False
    days = int(asset.on_change.split()[1])
    last = dt.date.fromisoformat(daily_partitions.get_last_partition_key())
    end = asset.partitions_def.time_window_for_partition_key(partition).end.date()
    return end <= last - dt.timedelta(days=days - 1)


def _raw_partitions(source: str, landing: Mapping[str, str], known: set[str]) -> list[str]:
    """The days of a source whose own landing file has landed and that are partitions."""
    days = []
    for file_key in landing:
        parsed = parse_key(file_key)
        if parsed and parsed[0] == source and parsed[1].isoformat() in known:
            days.append(parsed[1].isoformat())
    return days


def feeding_files(source: str, day: str, landing: Mapping[str, str]) -> dict[str, str]:
    """The landing files (with their current versions) whose rows a raw day holds: its own
    file and those of the source's `late_days` after it that have landed."""
    late = source_specs()[source].late_days
    keys = [LandingZone.key(source, d) for d in files_feeding(dt.date.fromisoformat(day), late)]
    return {k: landing[k] for k in keys if k in landing}


def _derived_partitions(
    asset: AssetFacts, facts: Mapping[AssetKey, AssetFacts], universe: Mapping
) -> list[str | None]:
    """The partitions a derived asset can have: the days all its daily inputs have (daily),
    the periods holding any of its inputs' days (weekly, monthly), or one (unpartitioned)."""
    parents = [p for p in asset.parents if p in universe]
    if not parents or not any(universe[p] for p in parents):
        return []
    if asset.partitions_def is None:
        return [None]
    daily = [universe[p] for p in parents if facts[p].partitions_def == daily_partitions]
    if asset.partitions_def == daily_partitions:
        return sorted(set.intersection(*daily)) if daily else []
    days = set().union(*daily) if daily else set()
    return sorted({p for d in days if d and (p := closed_period_key(asset.partitions_def, d))})


def _inputs_of(
    asset: AssetFacts, partition: str | None, facts: Mapping[AssetKey, AssetFacts], universe
) -> list[tuple[AssetKey, str | None]]:
    """The (input asset, partition) pairs a partition of `asset` reads."""
    return [
        (parent, p)
        for parent in asset.parents
        if parent in facts
        for p in input_keys(
            asset.partitions_def, facts[parent].partitions_def, partition, universe.get(parent, ())
        )
    ]


def _judge(
    asset: AssetFacts,
    partition: str | None,
    record: BuildRecord | None,
    inputs: list[tuple[AssetKey, str | None]],
    records: Mapping[AssetKey, Mapping[str | None, BuildRecord]],
    landing: Mapping[str, str],
) -> tuple[str, str] | None:
    """Why a partition (reading the partitions `inputs`) is out of date at its own level,
    None when it is not."""
    if record is None:
        return NEVER_BUILT, ""
    if record.code != asset.code:
        return CODE_CHANGED, ", ".join(changed_parts(record.parts, asset.parts))
    if asset.source is not None:
        now = feeding_files(asset.source, partition, landing)
        read = record.landing or {}
        changed = sorted(k for k in now if read.get(k) != now[k])
        if changed:
            verb = "rewritten" if changed[0] in read else "new"
            return LANDING_CHANGED, f"{changed[0]} {verb}" + (
                f" (+{len(changed) - 1} more)" if len(changed) > 1 else ""
            )
        return None
    if (changed := rebuilt_input(record, inputs, records)) is not None:
        return UPSTREAM_REBUILT, changed
    return None


def rebuilt_input(
    record: BuildRecord,
    inputs: Iterable[tuple[AssetKey, str | None]],
    records: Mapping[AssetKey, Mapping[str | None, BuildRecord]],
) -> str | None:
    """The first input partition (as "asset partition") whose columns this build read have
    changed since: its view of them is not the one recorded (`BuildRecord.view`), or, for an
    input the record does not version (no lineage, a dependency the SQL does not read), it was
    rebuilt after. None when none has."""
    for parent, parent_partition in inputs:
        upstream = records.get(parent, {}).get(parent_partition)
        if upstream is None:
            continue
        identifier = ".".join(parent.path)
        read = (record.reads or {}).get(parent.path[-1])
        if record.inputs is not None and read is not None:
            key = input_key(identifier, parent_partition)
            changed = record.inputs.get(key) != upstream.view(read)
        else:
            changed = upstream.at > record.at
        if changed:
            return parent.to_user_string() + (f" {parent_partition}" if parent_partition else "")
    return None


def _unaffected(
    parent: Stale,
    record: BuildRecord | None,
    facts: Mapping[AssetKey, AssetFacts],
    records: Mapping[AssetKey, Mapping[str | None, BuildRecord]],
    columns_of: Callable[[str], list[str]] | None,
) -> bool:
    """A reader's build (`record`) does not follow its input's out-of-date partition: the input
    only has a code change, and that change leaves the columns the reader read as they were
    (e.g. it adds a column the reader does not read). Its rebuild will then leave the reader's
    view of it unchanged (`rebuilt_input`), so nothing follows."""
    if parent.reason != CODE_CHANGED or record is None or columns_of is None:
        return False
    read = (record.reads or {}).get(parent.asset.path[-1])
    old = records.get(parent.asset, {}).get(parent.partition)
    if record.inputs is None or read is None or old is None:
        return False
    key = input_key(".".join(parent.asset.path), parent.partition)
    new_columns = _columns_now(facts[parent.asset], facts, columns_of)
    if new_columns is None or key not in record.inputs:
        return False
    return record.inputs[key] == replace(old, columns=new_columns).view(read)


def _columns_now(
    asset: AssetFacts,
    facts: Mapping[AssetKey, AssetFacts],
    columns_of: Callable[[str], list[str]],
) -> dict[str, str] | None:
    """The column-level code a derived table's current SQL would record, over its inputs'
    columns now; None for a table without column-level code."""
    parts = asset.column_parts
    if not parts or not parts.get("sql"):
        return None
    inputs = {
        parent.path[-1]: columns_of(".".join(parent.path))
        for parent in asset.parents
        if parent in facts and parent.path[-1] in sql_inputs(parts["sql"])
    }
    found = column_reads(parts["sql"], inputs)
    return column_versions(found["code"], parts["shared"], parts["columns"])


def _estimate(built: Mapping[str | None, BuildRecord], partition: str | None) -> tuple[int, float]:
    """Rows and seconds of the partition's last build, else the mean of the asset's others."""
    if (record := built.get(partition)) is not None:
        return record.rows, record.seconds
    if not built:
        return 0, 0.0
    return (
        sum(r.rows for r in built.values()) // len(built),
        sum(r.seconds for r in built.values()) / len(built),
    )


def run_requests(
    plan: Plan, facts: Mapping[AssetKey, AssetFacts], trigger: str = "landing_sensor"
) -> list[RunRequest]:
    """The origins of a plan as runs: assets with the same partitions and partitioning
    together, one run per contiguous range of at most PERIODS_PER_RUN partitions; each run's
    key names what it builds and why, so a request is never made twice."""
    by_asset: dict[AssetKey, dict[str | None, Stale]] = defaultdict(dict)
    for item in plan.origins:
        by_asset[item.asset][item.partition] = item
    groups: dict[tuple, list[AssetKey]] = defaultdict(list)
    for key, items in by_asset.items():
        partitions_def = facts[key].partitions_def
        if partitions_def is None:
            groups[(None, None)].append(key)
            continue
        chunk = PERIODS_PER_RUN[partitioning_of(partitions_def)]
        for key_range in contiguous_key_ranges(partitions_def, list(items), chunk):
            groups[(id(partitions_def), key_range)].append(key)
    requests = []
    for (_, key_range), keys in sorted(groups.items(), key=lambda g: (g[0][1] or ("", ""), g[1])):
        keys = sorted(keys)
        why = sorted(
            (k.to_user_string(), p or "", s.reason, s.detail)
            for k in keys
            for p, s in by_asset[k].items()
            if key_range is None or key_range[0] <= (p or "") <= key_range[1]
        )
        digest = hashlib.sha256(json.dumps(why).encode()).hexdigest()[:16]
        tags = {"marts/trigger": trigger}
        if key_range is not None:
            tags |= range_tags(*key_range)
        span = f"{key_range[0]}:{key_range[1]}" if key_range else "all"
        requests.append(
            RunRequest(run_key=f"plan:{span}:{digest}", asset_selection=keys, tags=tags)
        )
    return requests
