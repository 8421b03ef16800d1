"""raw_*: landing files -> typed, day-partitioned Iceberg tables; bad rows -> raw.quarantine."""

import datetime as dt
from collections.abc import Iterator
from functools import partial

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetsDefinition,
    MetadataValue,
    Output,
)
from dagster_duckdb import DuckDBResource
from pyiceberg.expressions import EqualTo

from marts_project.core.lineage import asset_key_for_table
from marts_project.core.partitions import day_window, files_feeding
from marts_project.core.versions import BLOCKING_FAILED_METADATA, LANDING_METADATA, code_parts
from marts_project.raw.checks import (
    files_over_share,
    header_result,
    header_spec,
    quarantine_share_result,
    quarantine_share_spec,
)
from marts_project.raw.sources import SourceSpec, source_specs
from marts_project.raw.validation import LandingFile, parse_landing_files
from marts_project.resources.iceberg import IcebergWarehouse
from marts_project.resources.landing import LandingZone
from marts_project.transform import iceberg_table, measured

RAW = "raw"
QUARANTINE_TABLE = "raw.quarantine"


class MissingLandingFileError(FileNotFoundError):
    """A partition was requested before its source delivered the day's file."""


def landing_file(landing: LandingZone, spec: SourceSpec, day: dt.date) -> LandingFile:
    """The source's file of `day`, opened as a stream when it is parsed."""
    return LandingFile(partial(landing.open_file, spec.name, day), day, landing.key(spec.name, day))


def ingest(
    spec: SourceSpec,
    days: list[dt.date],
    landing: LandingZone,
    duckdb: DuckDBResource,
) -> tuple[pa.Table, pa.Table, dict[str, object], dict[str, dict[str, int]], dict]:
    """The source's rows of `days`: (typed rows, quarantined rows, stats of the write, the same
    counts for each day, and each file read with its rows quarantined and its rows).

    Rows of these days come from their own files and, for a source with `late_days`, from the
    files of up to that many days after (late rows); the latter are read when they have landed.
    The quarantine holds the rejected rows of the own files only (each file's rejects belong
    to its own day). Rows of own files that belong to earlier days are left to those days.
    """
    # each file's version (and write time) before it is read: one rewritten while it is read
    # shows as changed afterwards
    stamps: dict[dt.date, tuple[str, dt.datetime | None]] = {}
    for day in days:
        if (found := landing.version(spec.name, day)) is None:
            raise MissingLandingFileError(
                f"{spec.name}: no landing file for {day} at {landing.path(spec.name, day)}; "
                "the source has not delivered this day yet"
            )
        stamps[day] = found
    for later in files_feeding(days[-1], spec.late_days)[1:]:
        if (found := landing.version(spec.name, later)) is not None:
            stamps[later] = found
    files = [landing_file(landing, spec, day) for day in stamps]
    versions = {f.source_file: stamps[f.day][0] for f in files}
    read_by_day = {  # each partition's record: the files that feed it (its own, later days')
        day.isoformat(): {
            f.source_file: versions[f.source_file]
            for f in files
            if f.day in files_feeding(day, spec.late_days)
        }
        for day in days
    }
    parsed = parse_landing_files(files, spec, duckdb)
    first, last = days[0], days[-1]
    own = pa.array([f.source_file for f in files if f.day <= last])
    dated = parsed.valid.column(spec.date_column)
    in_window = pc.and_(pc.greater_equal(dated, first), pc.less_equal(dated, last))
    whole = pc.all(in_window, skip_nulls=False).as_py()  # the common case: no copy
    published = parsed.valid if whole else parsed.valid.filter(in_window)
    from_own = pc.is_in(parsed.valid.column("_source_file"), own)
    quarantine = parsed.quarantine.filter(pc.less_equal(parsed.quarantine["partition_date"], last))
    file_day = {f.source_file: f.day for f in files}
    rejected = _count(parsed.quarantine.column("source_file"))  # of every file read
    judged = {
        f.source_file: (rejected.get(f.source_file, 0), parsed.rows_in_by_day.get(f.day, 0))
        for f in files
    }
    # rows of own files that belong to earlier days, each counted on its file's day
    early = _count(parsed.valid.column("_source_file"), pc.and_(from_own, pc.invert(in_window)))
    by_day = _stats_by_day(
        {
            "rows_in": parsed.rows_in_by_day,
            "rows_published": _count(published.column(spec.date_column)),
            "rows_quarantined": _count(quarantine.column("partition_date")),
            # late rows: published here from the files of later days (within late_days)
            "rows_from_later_files": _count(dated, pc.and_(in_window, pc.invert(from_own))),
            # rows of these days' files that belong to earlier days (published with those)
            "rows_for_earlier_days": {file_day[f]: n for f, n in early.items()},
            # rows kept with an invalid optional value set to null (why: `_value_issues`)
            "values_nulled": _count(
                published.column(spec.date_column),
                pc.is_valid(published.column("_value_issues")),
            ),
        },
        days,
    )
    ignored, carried = parsed.ignored_columns, parsed.carried_columns
    stats = {
        **{name: sum(c[name] for c in by_day.values()) for name in STEP_COUNTS},
        "files_read": len(files),
        # when each file read was last written: the landing arrival history
        # (marts_project/observability/slo.py)
        "landing/arrivals": MetadataValue.json(
            {f.source_file: at.isoformat() for f in files if (at := stamps[f.day][1])}
        ),
        # per partition, the version of every landing file it read: recorded with its data
        # (`versions.py`), it decides whether a file changed since, whoever built it
        LANDING_METADATA: MetadataValue.json(read_by_day),
        "ignored_columns": MetadataValue.text(", ".join(sorted(ignored)) or "none"),
        "carried_columns": MetadataValue.text(", ".join(sorted(carried)) or "none"),
        # file -> the contract's optional columns its header lacked (loaded as null)
        "missing_optional_columns": MetadataValue.json(
            {f: list(cols) for f, cols in sorted(parsed.missing_optional.items())}
        ),
    }
    return published, quarantine, stats, by_day, judged


# The counts a raw write reports, for the step and for each day it wrote
STEP_COUNTS = (
    "rows_in",
    "rows_published",
    "rows_quarantined",
    "rows_from_later_files",
    "rows_for_earlier_days",
    "values_nulled",
)


def _count(values: pa.ChunkedArray, where: pa.ChunkedArray | None = None) -> dict:
    """How often each value occurs in `values` (only where `where` holds, when given)."""
    if where is not None:
        values = values.filter(where)
    return {c["values"]: c["counts"] for c in pc.value_counts(values).to_pylist()}


def _stats_by_day(
    counts: dict[str, dict[dt.date, int]], days: list[dt.date]
) -> dict[str, dict[str, int]]:
    """Each of `days` (its partition key) with every count of `counts` (count name -> day ->
    rows) on that day."""
    return {d.isoformat(): {name: by.get(d, 0) for name, by in counts.items()} for d in days}


def build_raw_asset(spec: SourceSpec) -> AssetsDefinition:
    """One raw asset per landing source."""

    # Raw tables are requested by the landing sensor and the reprocessing schedules: only the
    # landing zone knows when a source delivered. Their automation condition (attached by the
    # composition root: `automation/conditions.automated`) only retries a failed partition.
    @iceberg_table(
        RAW,
        spec.date_column,
        name=spec.table,
        description=spec.description,
        metadata={"landing/source": spec.name},
        code=code_parts("raw", **{f"raw/sources.yml: {spec.name}": spec.model_dump(mode="json")}),
        check_specs=[
            quarantine_share_spec(spec, asset_key_for_table(spec.table)),
            header_spec(asset_key_for_table(spec.table)),
        ],
    )
    def _raw(
        context: AssetExecutionContext,
        landing: LandingZone,
        warehouse: IcebergWarehouse,
        duckdb: DuckDBResource,
    ) -> Iterator[Output | AssetCheckResult]:
        window = day_window(context)
        with measured(context, rows_in=None) as done:
            published, quarantine, stats, by_day, judged = ingest(
                spec, window.days, landing, duckdb
            )
            done(published)
        warehouse.overwrite_days(
            QUARANTINE_TABLE,
            quarantine,
            "partition_date",
            window.start,
            window.end,
            {"dagster.run_id": context.run_id},
            extra_filter=EqualTo("source", spec.name),
        )
        if stats["rows_quarantined"]:
            context.log.warning(
                f"{spec.name}: {stats['rows_quarantined']} of {stats['rows_in']} rows quarantined "
                f"in {QUARANTINE_TABLE}"
            )
        output = context.assets_def.get_output_name_for_asset_key(context.asset_key)
        over = files_over_share(spec, judged)  # a day that read one of them is blocked
        read_by_day = stats[LANDING_METADATA].data
        blocked = [day for day, read in read_by_day.items() if over.keys() & set(read)]
        share = quarantine_share_result(
            spec, judged, blocked, stats["rows_published"], stats["rows_quarantined"]
        )
        if blocked:  # recorded with those days: readers must not build on them
            stats[BLOCKING_FAILED_METADATA] = MetadataValue.json(
                {day: [share.check_name] for day in blocked}
            )
        context.add_output_metadata(stats, output_name=output)
        if len(window.days) > 1:  # each day's materialization: its own counts and files read
            arrived = stats["landing/arrivals"].data
            for day, files in stats[LANDING_METADATA].data.items():
                own = {f: arrived[f] for f in files if f in arrived}
                context.add_asset_metadata(
                    {
                        **by_day[day],
                        LANDING_METADATA: MetadataValue.json({day: files}),
                        "landing/arrivals": MetadataValue.json(own),
                    },
                    partition_key=day,
                )
        yield Output(published, output_name=output)
        yield share
        yield header_result(stats["missing_optional_columns"].data, stats["ignored_columns"].text)

    return _raw


raw_assets = [build_raw_asset(spec) for spec in source_specs().values()]
