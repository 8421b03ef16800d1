"""The pyiceberg fixes change how often metadata is computed or parsed, never what it is."""

from __future__ import annotations

import datetime as dt
from importlib.metadata import version

import pyarrow as pa
import pytest

from marts_project.deployment import open_resource
from marts_project.resources import pyiceberg_fix
from marts_project.settings import Settings

pytestmark = pytest.mark.quick  # the unit tier: `pytest -m quick`


def test_the_fix_is_installed_only_on_the_pyiceberg_it_was_made_for():
    assert (version("pyiceberg") == pyiceberg_fix.PATCHED_VERSION) == pyiceberg_fix.APPLIED


def test_a_transaction_computes_its_metadata_once_per_state_and_equal_to_pyiceberg(tmp_path):
    warehouse = open_resource(Settings.local(tmp_path), "warehouse")
    day = dt.date(2026, 10, 5)
    rows = pa.table({"d": [day], "v": [1]})
    warehouse.overwrite_days("raw.t", rows, "d", day, day + dt.timedelta(days=1))
    table = warehouse.load_table("raw.t")
    with table.transaction() as tx:
        first = tx.table_metadata
        assert tx.table_metadata is first  # no new deep copy while nothing was staged
        tx.set_properties(owner="marts")
        staged = tx.table_metadata
        assert staged is not first and staged.properties["owner"] == "marts"
        expected = pyiceberg_fix._copying_update_table_metadata(table.metadata, tx._updates)
        assert staged.model_dump(exclude={"last_updated_ms"}) == expected.model_dump(
            exclude={"last_updated_ms"}
        )
    assert warehouse.load_table("raw.t").properties["owner"] == "marts"


def test_a_write_is_split_by_partition_into_the_same_parts_as_pyiceberg_splits_it(tmp_path):
    warehouse = open_resource(Settings.local(tmp_path), "warehouse")
    first = dt.date(2026, 10, 5)
    days = [first + dt.timedelta(days=i % 3) for i in (2, 0, 1, 0, 2, 2, 1, 0)]
    rows = pa.chunked_array([days[:3], days[3:]])  # DuckDB hands over several chunks
    data = pa.table({"d": rows, "v": list(range(len(days)))})
    warehouse.overwrite_days("raw.t", data, "d", first, first + dt.timedelta(days=3))
    table = warehouse.load_table("raw.t")
    spec, schema = table.spec(), table.schema()

    def parts(split, rows: pa.Table) -> dict:
        return {
            tuple(p.partition_key.partition): p.arrow_table_partition.to_pylist()
            for p in split(spec, schema, rows)
        }

    ours, theirs = pyiceberg_fix._determine_partitions, pyiceberg_fix._per_partition_filter
    assert parts(ours, data) == parts(theirs, data)  # rows keep their order within a day
    in_order = data.sort_by("d")
    assert parts(ours, in_order) == parts(theirs, in_order)
    assert len(parts(ours, data)) == 3
    assert sorted(table.scan().to_arrow()["v"].to_pylist()) == list(range(len(days)))


def test_a_tables_metadata_file_is_parsed_once_and_every_commit_is_seen(tmp_path):
    """Loads of an unchanged table share one parse of its metadata file; a commit by another
    writer (another process, here another catalog) is seen by the next load."""
    warehouse = open_resource(Settings.local(tmp_path), "warehouse")
    other = open_resource(Settings.local(tmp_path), "warehouse")  # its own catalog connection
    day = dt.date(2026, 10, 5)
    rows = pa.table({"d": [day], "v": [1]})
    warehouse.overwrite_days("raw.t", rows, "d", day, day + dt.timedelta(days=1))
    first = warehouse.load_table("raw.t")
    again = warehouse.load_table("raw.t")
    assert again.metadata is first.metadata  # the same file: parsed once
    parsed = pyiceberg_fix._read_table_metadata(first.io.new_input(first.metadata_location))
    assert first.metadata.model_dump() == parsed.model_dump()  # the commit's own: as a parse
    with other.load_table("raw.t").transaction() as tx:
        tx.set_properties(owner="someone else")
    seen = warehouse.load_table("raw.t")
    assert seen.metadata_location != first.metadata_location
    parsed = pyiceberg_fix._read_table_metadata(seen.io.new_input(seen.metadata_location))
    assert seen.metadata.model_dump() == parsed.model_dump()
    assert seen.properties["owner"] == "someone else"
    assert seen.metadata.model_dump() != first.metadata.model_dump()


def test_a_commit_writes_its_new_metadata_file_without_asking_whether_it_exists(
    tmp_path, monkeypatch
):
    """Its name is new by construction (version and UUID): on S3 the question was a HEAD
    request per commit whose answer was always no."""
    warehouse = open_resource(Settings.local(tmp_path), "warehouse")
    day = dt.date(2026, 10, 5)
    rows = pa.table({"d": [day], "v": [1]})
    warehouse.overwrite_days("raw.t", rows, "d", day, day + dt.timedelta(days=1))
    table = warehouse.load_table("raw.t")
    before = table.metadata_location
    asked: list[str] = []
    output = type(table.io.new_output(table.metadata_location))
    exists = output.exists
    monkeypatch.setattr(output, "exists", lambda self: asked.append(self.location) or exists(self))
    with table.transaction() as tx:
        tx.set_properties(owner="marts")
    assert [a for a in asked if a.endswith(".metadata.json")] == []
    again = warehouse.load_table("raw.t")
    assert again.metadata_location != before
    assert again.properties["owner"] == "marts"
    assert again.scan().to_arrow()["v"].to_pylist() == [1]


def test_a_snapshots_manifest_list_is_read_once_and_a_new_snapshot_is_seen(tmp_path, monkeypatch):
    """Scans of an unchanged table share one read of its manifest list (on S3 an `info` and a
    read each time); a commit makes a new snapshot, whose list is read and whose rows are seen."""
    warehouse = open_resource(Settings.local(tmp_path), "warehouse")
    day = dt.date(2026, 10, 5)
    next_day = day + dt.timedelta(days=1)
    warehouse.overwrite_days("raw.t", pa.table({"d": [day], "v": [1]}), "d", day, next_day)
    reads: list[str] = []
    read = pyiceberg_fix._read_manifest_list
    monkeypatch.setattr(
        pyiceberg_fix, "_read_manifest_list", lambda io, path: reads.append(path) or read(io, path)
    )
    first = [warehouse.load_table("raw.t").scan().to_arrow() for _ in range(3)]
    assert len(reads) == 1
    assert all(t["v"].to_pylist() == [1] for t in first)
    after = next_day + dt.timedelta(days=1)
    warehouse.overwrite_days("raw.t", pa.table({"d": [next_day], "v": [2]}), "d", next_day, after)
    rows = warehouse.load_table("raw.t").scan().to_arrow()
    assert sorted(rows["v"].to_pylist()) == [1, 2]
    assert len(set(reads)) == 2  # the new snapshot's list, read once it exists


def test_staged_updates_apply_as_pyiceberg_applies_them_and_leave_the_base_as_it_was(tmp_path):
    """Without pyiceberg's final deep copy, the result is the same metadata and its base is
    unchanged, whatever the updates (properties, a snapshot, a branch, a removal)."""
    warehouse = open_resource(Settings.local(tmp_path), "warehouse")
    day = dt.date(2026, 10, 5)
    rows = pa.table({"d": [day, day], "v": [1, 2]})
    warehouse.overwrite_days("raw.t", rows, "d", day, day + dt.timedelta(days=1))
    table = warehouse.load_table("raw.t")
    before = table.metadata.model_dump()
    with table.transaction() as tx:
        tx.set_properties(owner="marts", note="x")
        tx.remove_properties("note")
        tx.overwrite(rows, overwrite_filter=f"d = '{day}'")
        updates = tx._updates
        ours = pyiceberg_fix.update_table_metadata(table.metadata, updates)
        theirs = pyiceberg_fix._copying_update_table_metadata(table.metadata, updates)
        assert ours.model_dump(exclude={"last_updated_ms"}) == theirs.model_dump(
            exclude={"last_updated_ms"}
        )
        assert table.metadata.model_dump() == before  # the base is untouched
    snapshot = warehouse.load_table("raw.t").current_snapshot().snapshot_id
    warehouse.load_table("raw.t").manage_snapshots().create_branch(snapshot, "audit").commit()
    table = warehouse.load_table("raw.t")
    assert table.metadata.refs["audit"].snapshot_id == snapshot
    assert table.properties["owner"] == "marts" and "note" not in table.properties
    assert table.scan().to_arrow().num_rows == 2
