"""Table maintenance: snapshot expiry, small-file compaction and orphan cleanup keep the data
and report what they removed."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from dagster import DagsterEventType

from marts_project.resources.maintenance import MaintenancePolicy, maintain
from marts_project_tests.conftest import DAY

AGGRESSIVE = MaintenancePolicy(
    retain=dt.timedelta(0), keep_last=2, compact_min_files=1, orphan_min_age=dt.timedelta(0)
)


def _rows(table) -> list[tuple]:
    return sorted(tuple(r.values()) for r in table.to_pylist())


def test_compaction_rewrites_a_day_of_small_files_as_one_with_the_same_rows(lakehouse):
    warehouse = lakehouse.warehouse
    for i in range(5):  # five small commits into one day
        data = pa.table({"d": [DAY] * 3, "v": [i * 10 + j for j in range(3)]})
        if i == 0:
            warehouse.overwrite_days("raw.small", data, "d", DAY, DAY + dt.timedelta(days=1))
        else:
            warehouse.load_table("raw.small").append(data)
    before = warehouse.read("raw.small")
    assert warehouse.load_table("raw.small").inspect.data_files().num_rows == 5

    report = maintain(warehouse, "raw.small", AGGRESSIVE)

    assert report.days_compacted == 1
    assert (report.data_files_before, report.data_files_after) == (5, 1)
    assert _rows(warehouse.read("raw.small")) == _rows(before)


def test_expiry_and_orphan_cleanup_remove_history_but_never_current_data(lakehouse):
    lakehouse.seed(DAY, 1)
    for _ in range(4):
        lakehouse.run(DAY)
    identifier = "marketing.mkt_campaign_performance_fact"
    table = lakehouse.warehouse.load_table(identifier)
    oldest = table.snapshots()[0].snapshot_id
    current = lakehouse.warehouse.read(identifier)
    stray = f"{table.location().removeprefix('file://')}/data/stray-from-a-killed-writer.parquet"
    with open(stray, "wb") as handle:
        handle.write(b"PAR1 not referenced by any snapshot")

    gentle = maintain(lakehouse.warehouse, identifier)  # default policy: keeps a week
    assert gentle.snapshots_expired == 0 and gentle.orphan_files_deleted == 0
    assert gentle.orphan_files_found == 1

    report = maintain(lakehouse.warehouse, identifier, AGGRESSIVE)

    assert report.snapshots_expired > 0 and report.snapshots_left == 2
    assert report.orphan_files_deleted >= 1 and report.orphan_bytes_deleted > 0
    table = lakehouse.warehouse.load_table(identifier)
    assert table.snapshot_by_id(oldest) is None
    assert _rows(lakehouse.warehouse.read(identifier)) == _rows(current)


def test_the_maintenance_job_reports_what_it_removed(lakehouse):
    lakehouse.seed(DAY, 1)
    lakehouse.run(DAY)
    job = lakehouse.defs.resolve_job_def("table_maintenance_job")
    result = job.execute_in_process(instance=lakehouse.instance)
    assert result.success
    outputs = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_OUTPUT]
    metadata = outputs[0].event_specific_data.metadata
    assert metadata["tables"].value == 27
    assert "| marketing.mkt_campaign_performance_fact |" in metadata["report"].value
    observations = [
        e for e in result.all_events if e.event_type == DagsterEventType.ASSET_OBSERVATION
    ]
    assert len(observations) == 27
