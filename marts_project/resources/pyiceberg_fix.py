"""The one place that touches pyiceberg internals: cache `Transaction.table_metadata`, apply
staged updates without deep-copying the whole metadata, split a write by partition in one sort
instead of one filter per partition, parse a table's metadata file and a snapshot's manifest
list once per process, and write a new metadata file without asking first whether it exists.

pyiceberg 0.12.0 recomputes `Transaction.table_metadata` on every read by replaying the staged
updates and deep-copying the whole table metadata (snapshots included), and its overwrite reads
it dozens of times: in a one-day refresh (39 overwrites) that was 1,456 deep copies and 5.1 of
30 profiled seconds, growing with each table's history. The fix is upstream, approved but not
released (apache/iceberg-python#3302, carried on as #3784): cache the result keyed on the
identity of its two inputs, the table's metadata and the tuple of staged updates (a tuple, so
every staged update rebinds it and the cache misses). The metadata models are frozen, so
handing the same object to several readers is what pyiceberg does for `Table.metadata` too.

Each of those computations, and each commit, still ended in a deep copy of the whole metadata
(`update_table_metadata`'s last line: every snapshot, and the properties with a build record per
partition): 190 of them, 0.86 s, in a one-day refresh at demo size, growing with each table's
history. The copy is defensive: every update handler builds new containers (`dict(...)`,
`list + [...]`, `{**refs, ...}`, `model_copy(update=...)`) and nothing in pyiceberg or here
changes a metadata's lists or dicts in place, so the replacement is the same function without
that copy (the result shares unchanged parts with its base, as the frozen models allow).

pyiceberg's `_determine_partitions` filters the whole table once per partition value and then
copies each part again (`combine_chunks`): a 7-day write is seven scans and two copies of the
data, on the writing thread, before its Parquet files can be encoded. Measured on a week at
100,000 ad rows a day (five of the largest tables, 2.3 M rows), it was 1.2 of 2.7 profiled
seconds of the writes. With one partition field (every table here) the replacement orders the
rows by partition once (a stable sort: rows keep their order inside a partition, as with the
filter; no copy at all when they already arrive in partition order, as a landing file's day
does) and hands pyiceberg zero-copy slices, one per partition, with the same partition keys.
The slices keep the table's chunks: pyiceberg packs them into data files and Parquet cuts row
groups by row count across chunks, so combining them first (pyiceberg's `combine_chunks`) was
only a copy of the whole write (495 MB for a 314 MB landing file's day).
Several partition fields keep pyiceberg's own path.

Every catalog load of a table reads and parses its current metadata file (JSON into pydantic
models: the schema, every snapshot kept, and the properties, which hold a build record per
partition, about 1.3 KB each, `versions.py`); a one-day refresh loads tables 170 times, most of
them unchanged since the last load, and each parse grows with the table's history. A metadata
file is never rewritten (Iceberg names each version anew, with a UUID), so the parse of the
latest file read for each table is kept and handed out again while the catalog still points
at that file; the catalog is still asked every time, so a commit by any process is seen at
once. One entry per table: the memory is one metadata per table, not one per version. A
commit of this process hands over the metadata it has just written (validated as a parse is),
so a table's next load after its own write does not parse that file either.

Each new metadata file was written only after asking whether it already exists
(`MetastoreCatalog._write_metadata`: `create(overwrite=False)`): on S3 a HEAD request per
commit, four for a mart's write-audit-publish, and the answer is always no, as the file's name
is new by construction (the next version number and a random UUID). pyiceberg's own note calls
the check racy, not a guard. The replacement writes the same bytes to the same new name without
asking; a data file and a manifest were already written that way.

A snapshot's manifest list was read again on every scan and commit that reached it (pyiceberg
keeps the manifests it lists, not the list: "re-reading is cheap"): 98 reads of 49 lists in a
one-day refresh at demo size, each an `info` and a read on S3. A manifest list is never
rewritten either (named for its snapshot, with a UUID), so the last MANIFEST_LISTS_KEPT lists
read are kept, as the tuple of pyiceberg's own shared `ManifestFile` objects it returns.

Applied only to the pyiceberg version it was written and tested against; any other version
keeps its own behaviour (and `test_pyiceberg_fix.py` says so).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from importlib.metadata import version

import pyarrow as pa
import pyarrow.compute as pc
from cachetools import LRUCache
from pyiceberg import catalog as pyiceberg_catalog
from pyiceberg import table as pyiceberg_table
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.io import FileIO, InputFile
from pyiceberg.io import pyarrow as pyiceberg_arrow
from pyiceberg.manifest import ManifestFile
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.serializers import FromInputFile, ToOutputFile
from pyiceberg.table import CommitTableResponse, Table, Transaction
from pyiceberg.table import snapshots as pyiceberg_snapshots
from pyiceberg.table import update as pyiceberg_update
from pyiceberg.table.metadata import TableMetadata, TableMetadataUtil
from pyiceberg.utils.datetime import datetime_to_millis

PATCHED_VERSION = "0.12.0"
_copying_update_table_metadata = pyiceberg_update.update_table_metadata  # pyiceberg's own


def update_table_metadata(
    base_metadata: TableMetadata,
    updates: tuple[pyiceberg_update.TableUpdate, ...],
    enforce_validation: bool = False,
    metadata_location: str | None = None,
) -> TableMetadata:
    """pyiceberg 0.12.0's `update_table_metadata`, line for line, without its final deep copy."""
    context = pyiceberg_update._TableMetadataUpdateContext()
    new_metadata = base_metadata
    for update in updates:
        new_metadata = pyiceberg_update._apply_table_update(update, new_metadata, context)
    if context.has_changes():
        if metadata_location:
            new_metadata = pyiceberg_update._update_table_metadata_log(
                new_metadata, metadata_location, base_metadata.last_updated_ms
            )
        if base_metadata.last_updated_ms == new_metadata.last_updated_ms:
            now = datetime_to_millis(dt.datetime.now().astimezone())
            new_metadata = new_metadata.model_copy(update={"last_updated_ms": now})
    new_metadata.spec().check_compatible(new_metadata.schema())
    new_metadata.sort_order().check_compatible(new_metadata.schema())
    if enforce_validation:
        return TableMetadataUtil.parse_obj(new_metadata.model_dump())
    return new_metadata


def _table_metadata(self: Transaction) -> TableMetadata:
    base, updates = self._table.metadata, self._updates
    cached = self.__dict__.get("_marts_table_metadata")
    if cached is not None and cached[0] is base and cached[1] is updates:
        return cached[2]
    metadata = update_table_metadata(base, updates)
    self.__dict__["_marts_table_metadata"] = (base, updates, metadata)
    return metadata


_per_partition_filter = pyiceberg_arrow._determine_partitions


def _determine_partitions(
    spec: PartitionSpec, schema: Schema, arrow_table: pa.Table
) -> Iterator[pyiceberg_arrow._TablePartition]:
    """`arrow_table` split by the partition of each row: one slice per partition value."""
    if len(spec.fields) != 1 or arrow_table.num_rows == 0:
        yield from _per_partition_filter(spec, schema, arrow_table)
        return
    field = spec.fields[0]
    source = schema.find_field(field.source_id)
    column = pyiceberg_arrow._get_field_from_arrow_table(
        arrow_table, schema.find_column_name(field.source_id)
    )
    keys = field.transform.pyarrow_transform(source.field_type)(column)
    ordered = pc.all(pc.less_equal(keys[:-1], keys[1:])).as_py() is not False
    if keys.null_count or not ordered:
        order = pc.sort_indices(keys)  # stable, nulls last
        keys, arrow_table = keys.take(order), arrow_table.take(order)
    runs = pc.run_end_encode(keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys)
    start = 0
    for value, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist(), strict=True):
        key = PartitionKey(
            field_values=[PartitionFieldValue(field=field, value=value)],
            partition_spec=spec,
            schema=schema,
        )
        yield pyiceberg_arrow._TablePartition(key, arrow_table.slice(start, end - start))
        start = end


_read_table_metadata = FromInputFile.table_metadata
# a table's metadata folder -> (the metadata file last parsed there, its parse)
_PARSED: dict[str, tuple[str, TableMetadata]] = {}


def _table_metadata_once(input_file: InputFile, encoding: str = "utf-8") -> TableMetadata:
    """`FromInputFile.table_metadata`, parsed once per metadata file (the latest per table)."""
    location = input_file.location
    folder = location.rsplit("/", 1)[0]
    kept = _PARSED.get(folder)
    if kept is not None and kept[0] == location:
        return kept[1]
    metadata = _read_table_metadata(input_file, encoding)
    _PARSED[folder] = (location, metadata)
    return metadata


MANIFEST_LISTS_KEPT = 256  # a few hundred tuples of shared objects: kilobytes
_read_manifest_list = pyiceberg_snapshots._manifests
_MANIFEST_LISTS: LRUCache[str, tuple[ManifestFile, ...]] = LRUCache(maxsize=MANIFEST_LISTS_KEPT)
_MANIFEST_LISTS_LOCK = threading.Lock()


def _manifests_once(io: FileIO, manifest_list: str) -> tuple[ManifestFile, ...]:
    """pyiceberg's `_manifests`, read once per manifest list file (among the last kept)."""
    with _MANIFEST_LISTS_LOCK:
        kept = _MANIFEST_LISTS.get(manifest_list)
    if kept is None:
        kept = _read_manifest_list(io, manifest_list)
        with _MANIFEST_LISTS_LOCK:
            _MANIFEST_LISTS[manifest_list] = kept
    return kept


_commit_table = SqlCatalog.commit_table


def _commit_table_kept(
    self: SqlCatalog, table: Table, requirements: tuple, updates: tuple
) -> CommitTableResponse:
    """`SqlCatalog.commit_table`, keeping the metadata it wrote as that file's parse."""
    response = _commit_table(self, table, requirements, updates)
    location = response.metadata_location
    _PARSED[location.rsplit("/", 1)[0]] = (location, response.metadata)
    return response


def _write_new_metadata(metadata: TableMetadata, io: FileIO, metadata_path: str) -> None:
    """`MetastoreCatalog._write_metadata` without asking first whether the new file exists."""
    ToOutputFile.table_metadata(metadata, io.new_output(metadata_path), overwrite=True)


def apply() -> bool:
    """Install them if this is the pyiceberg they were made for; True when installed."""
    if version("pyiceberg") != PATCHED_VERSION:
        return False
    Transaction.table_metadata = property(_table_metadata)  # type: ignore[method-assign]
    for module in (pyiceberg_update, pyiceberg_table, pyiceberg_catalog):  # where it is called
        module.update_table_metadata = update_table_metadata
    pyiceberg_arrow._determine_partitions = _determine_partitions
    FromInputFile.table_metadata = staticmethod(_table_metadata_once)  # type: ignore[method-assign]
    SqlCatalog.commit_table = _commit_table_kept  # type: ignore[method-assign]
    pyiceberg_snapshots._manifests = _manifests_once  # where `Snapshot.manifests` calls it
    metastore = pyiceberg_catalog.MetastoreCatalog
    metastore._write_metadata = staticmethod(_write_new_metadata)  # type: ignore[method-assign]
    return True


APPLIED = apply()
