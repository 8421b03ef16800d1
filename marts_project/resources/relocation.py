"""Adopting a copied or moved embedded data folder (`marts relocate`).

Iceberg metadata holds absolute paths, so a copy's catalog still names the original's files:
writing through it would change the original. Relocation reads each table's current snapshot
from the copy's own files (every path it opens is mapped from the original's warehouse to the
copy's, and nothing is written through that mapping) and writes it anew under the copy's
warehouse, with its table properties (the build records, `versions.py`), so the copy plans
nothing new and the original is never opened. A landing file's local version names its inode
and change time, which a copy (or a move) changes: a recorded version is carried to the copy's
file when its size and modification time are the ones recorded (what `cp -a`, `rsync -a` and
`mv` keep), and left to show the file as rewritten otherwise. The snapshot history before the
move is not carried over: time travel and rollback start again at the relocation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace

from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.table import StaticTable
from pyiceberg.transforms import DayTransform

from marts_project.core.versions import BuildRecord, read_records, record_property
from marts_project.resources.iceberg import EPOCH, IcebergWarehouse
from marts_project.resources.landing import same_size_and_time

FROM, TO = "marts.relocate.from", "marts.relocate.to"
RELOCATED = "marts.relocated_from"  # snapshot property of the relocating writes
ROWS_PER_WRITE = 2_000_000  # a write holds at most about this many rows (memory)


class MovedFileIO(PyArrowFileIO):
    """Reads a path under `marts.relocate.from` at the same place under `marts.relocate.to`;
    refuses to write or delete (relocation only reads through it)."""

    def _moved(self, location: str) -> str:
        new = self.properties[TO]
        if location.startswith(new + "/") and "/../" not in location + "/":
            return location  # already the copy's
        return moved(location, self.properties[FROM], new)

    def new_input(self, location: str):
        return super().new_input(self._moved(location))

    def new_output(self, location: str):
        raise PermissionError(f"relocation writes nothing through the old paths: {location}")

    def delete(self, location) -> None:
        raise PermissionError(f"relocation deletes nothing: {location}")


def moved(location: str, old: str, new: str) -> str:
    """Where a file of the original's warehouse `old` is in the copy's `new`; refused for any
    path outside `old` (or leaving it through `..`): relocation reads nothing else."""
    inside = location.startswith(old + "/") and "/../" not in location[len(old) :] + "/"
    if not inside:
        raise PermissionError(f"relocation reads only files of {old}, not {location}")
    return new + location[len(old) :]


def relocate(
    warehouse: IcebergWarehouse,
    old: str,
    landing: dict[str, str],
    told: Callable[[str, int], None] = lambda t, n: None,
) -> list[str]:
    """Rewrite every table of the local catalog that lives under `old` (the original's
    warehouse) under `warehouse` (the copy's); `landing` is the copy's landing zone (key ->
    version); `told` hears of each table and its rows."""
    new = warehouse.warehouse.rstrip("/")
    old = old.rstrip("/")
    catalog = warehouse.catalog()
    relocated = []
    # table -> partition -> (its record before, after): a reader's record of what it read
    # follows its inputs' carried records, so tables go in layer order
    rebased: dict[str, dict[str | None, tuple[BuildRecord, BuildRecord]]] = {}
    for identifier in sorted(warehouse.table_identifiers(), key=_layer_order):
        location = catalog.load_table(identifier).metadata_location
        if not location.startswith(old + "/"):
            continue
        static = StaticTable.from_metadata(
            moved(location, old, new),
            properties={"py-io-impl": f"{__name__}.MovedFileIO", FROM: old, TO: new},
        )
        rows = _rewrite(warehouse, identifier, static, old, new, landing, rebased)
        relocated.append(identifier)
        told(identifier, rows)
    return relocated


def _rewrite(
    warehouse: IcebergWarehouse,
    identifier: str,
    static: StaticTable,
    old: str,
    new: str,
    landing: dict[str, str],
    rebased: dict[str, dict[str | None, tuple[BuildRecord, BuildRecord]]],
) -> int:
    """One table's current rows, read from the copy's files, written anew in the copy (the
    catalog's entry replaced: it is the copy's own database)."""
    column = _day_column(static)
    tasks = list(static.scan().plan_files())
    # groups of whole days (a day's files never split: each write replaces its days)
    groups: list[list[str]] = [[]]
    count, day = 0, None
    for task in sorted(tasks, key=lambda t: t.file.partition[0] if column else 0):
        this = task.file.partition[0] if column else None
        if count >= ROWS_PER_WRITE and this != day:
            groups.append([])
            count = 0
        groups[-1].append(moved(task.file.file_path, old, new))
        count, day = count + task.file.record_count, this
    warehouse.catalog().drop_table(identifier)  # the copy's catalog row only: no file goes
    properties = {RELOCATED: old}
    records = {k: v for k, v in static.properties.items() if not k.startswith("write.")}
    for partition, record in read_records(records).items():
        carried = _carried(record, landing, rebased)
        rebased.setdefault(identifier, {})[partition] = (record, carried)
        records[record_property(partition)] = carried.encode()
    total = 0
    for number, paths in enumerate(groups):
        data = warehouse.read_files(static, paths)
        last = number == len(groups) - 1  # the records land with the last rows
        total += data.num_rows
        if column is None or data.num_rows == 0:
            warehouse.replace_all(identifier, data, properties, records=records)
            continue
        days = data.column(column)
        start = min(days.to_pylist(), default=EPOCH)
        end = max(days.to_pylist(), default=EPOCH) + dt.timedelta(days=1)
        warehouse.overwrite_days(
            identifier,
            data,
            column,
            start,
            end,
            properties,
            records=records if last else None,
        )
    return total


def _carried(
    record: BuildRecord,
    landing: dict[str, str],
    rebased: dict[str, dict[str | None, tuple[BuildRecord, BuildRecord]]],
) -> BuildRecord:
    """A build record carried to the copy: each landing version it read moves to the copy's
    file when that file's size and modification time are the recorded ones (local versions end
    in inode and change time, which a copy changes); each input view it read moves to the view
    of its input's carried record when it was that of the input's record before."""
    if record.landing:
        record = replace(
            record,
            landing={
                key: now if (now := landing.get(key)) and same_size_and_time(v, now) else v
                for key, v in record.landing.items()
            },
        )
    if record.inputs and record.reads:
        inputs = dict(record.inputs)
        for key, view in record.inputs.items():
            identifier, _, partition = key.partition("|")
            pair = rebased.get(identifier, {}).get(partition or None)
            read = record.reads.get(identifier.rsplit(".", 1)[-1])
            if pair is not None and read is not None and pair[0].view(read) == view:
                inputs[key] = pair[1].view(read) or view
        record = replace(record, inputs=inputs)
    return record


def _layer_order(identifier: str) -> tuple[int, str]:
    """Raw, staging, intermediate, then the marts: every table after the ones it reads."""
    layers = ["raw", "staging", "intermediate"]
    namespace = identifier.split(".", 1)[0]
    return (layers.index(namespace) if namespace in layers else len(layers), identifier)


def _day_column(table: StaticTable) -> str | None:
    """The column a table is partitioned on by day, None when unpartitioned."""
    fields = table.spec().fields
    if len(fields) == 1 and isinstance(fields[0].transform, DayTransform):
        return table.schema().find_column_name(fields[0].source_id)
    return None
