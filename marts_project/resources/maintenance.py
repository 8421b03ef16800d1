"""Table maintenance: expire old snapshots, compact small files, remove orphan data files.

pyiceberg expires snapshot metadata only and has no compaction or orphan cleanup, so those
two are done here: a day with many small files is rewritten as one (same rows, one commit),
and data files no snapshot references any more (left by expired snapshots or by writers that
died before committing) are deleted once they are older than any write could still be.
"""

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.table import Table

from marts_project.resources.files import modified_at
from marts_project.resources.iceberg import EPOCH, IcebergWarehouse


@dataclass(frozen=True)
class MaintenancePolicy:
    retain: dt.timedelta = dt.timedelta(days=7)  # time travel window
    keep_last: int = 10  # snapshots always kept, however old
    compact_min_files: int = 4  # a day with more data files than this is compacted
    orphan_min_age: dt.timedelta = dt.timedelta(hours=6)  # younger files may be in flight


@dataclass(frozen=True)
class MaintenanceReport:
    table: str
    snapshots_expired: int
    snapshots_left: int
    days_compacted: int
    data_files_before: int
    data_files_after: int
    orphan_files_found: int
    orphan_files_deleted: int
    orphan_bytes_deleted: int


def expire_snapshots(table: Table, policy: MaintenancePolicy, now: dt.datetime) -> int:
    snapshots = sorted(table.snapshots(), key=lambda s: s.timestamp_ms)
    keep = {s.snapshot_id for s in snapshots[-policy.keep_last :]} if policy.keep_last else set()
    cutoff = (now - policy.retain).timestamp() * 1000
    protected = {ref.snapshot_id for ref in table.metadata.refs.values()}
    expire = [
        s.snapshot_id
        for s in snapshots
        if s.timestamp_ms < cutoff and s.snapshot_id not in keep | protected
    ]
    if expire:
        table.maintenance.expire_snapshots().by_ids(expire).commit()
    return len(expire)


def compact(warehouse: IcebergWarehouse, identifier: str, policy: MaintenancePolicy) -> int:
    """Rewrite each day holding more than `compact_min_files` data files as one file."""
    table = warehouse.load_table(identifier)
    spec = table.spec()
    if not spec.fields or table.current_snapshot() is None:
        return 0
    field = spec.fields[0]
    column = table.schema().find_field(field.source_id).name
    files = _inspect(table, "data_files")
    if files is None or files.num_rows == 0:
        return 0
    days = pc.struct_field(files.column("partition"), field.name).to_pylist()
    counts: dict[int, int] = {}
    for day in days:
        counts[day] = counts.get(day, 0) + 1
    compacted = 0
    for day_number, count in sorted(counts.items()):
        if day_number is None or count <= policy.compact_min_files:
            continue
        day = (
            day_number if isinstance(day_number, dt.date) else EPOCH + dt.timedelta(days=day_number)
        )
        end = day + dt.timedelta(days=1)
        rows = warehouse.read(identifier, column, day, end)
        warehouse.overwrite_days(
            identifier, rows, column, day, end, {"marts.maintenance": "compaction"}
        )
        compacted += 1
    return compacted


def remove_orphans(
    warehouse: IcebergWarehouse, table: Table, policy: MaintenancePolicy, now: dt.datetime
) -> tuple[int, int, int]:
    """(orphans found, deleted, bytes deleted) among the table's data files."""
    files = _inspect(table, "all_files") if table.snapshots() else None
    if files is None and _count_data_files(table) > 0:
        return 0, 0, 0  # cannot tell what is referenced: never delete on a guess
    paths = files.column("file_path").to_pylist() if files is not None else []
    referenced = {_strip(p) for p in paths}
    fs = warehouse.filesystem()
    data_dir = _strip(table.location().rstrip("/") + "/data")
    if not fs.exists(data_dir):
        return 0, 0, 0
    found = deleted = freed = 0
    for path, info in fs.find(data_dir, detail=True).items():
        if _strip(path) in referenced:
            continue
        found += 1
        modified = modified_at(info)
        if modified is not None and now - modified >= policy.orphan_min_age:
            fs.rm(path)
            deleted += 1
            freed += int(info.get("size") or 0)
    return found, deleted, freed


def maintain(
    warehouse: IcebergWarehouse,
    identifier: str,
    policy: MaintenancePolicy | None = None,
    now: dt.datetime | None = None,
) -> MaintenanceReport:
    """Compact, expire, then clean orphans of one table."""
    policy = policy or MaintenancePolicy()
    now = now or dt.datetime.now(dt.UTC)
    before = _count_data_files(warehouse.load_table(identifier))
    compacted = compact(warehouse, identifier, policy)
    table = warehouse.load_table(identifier)
    expired = expire_snapshots(table, policy, now)
    table = warehouse.load_table(identifier)
    found, deleted, freed = remove_orphans(warehouse, table, policy, now)
    return MaintenanceReport(
        table=identifier,
        snapshots_expired=expired,
        snapshots_left=len(table.snapshots()),
        days_compacted=compacted,
        data_files_before=before,
        data_files_after=_count_data_files(table),
        orphan_files_found=found,
        orphan_files_deleted=deleted,
        orphan_bytes_deleted=freed,
    )


def _inspect(table: Table, kind: str) -> pa.Table | None:
    """`table.inspect.<kind>()`, or None for a table with no files: pyiceberg 0.12 raises
    ArrowInvalid("Must pass at least one table") there instead of returning an empty table."""
    try:
        return getattr(table.inspect, kind)()
    except pa.ArrowInvalid:
        return None


def _count_data_files(table: Table) -> int:
    files = _inspect(table, "data_files") if table.current_snapshot() else None
    return files.num_rows if files is not None else 0


def _strip(path: str) -> str:
    return path.removeprefix("file://").removeprefix("s3://").removeprefix("s3a://")
