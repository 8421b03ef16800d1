"""The one daily partitioning every fact shares, and how ranges of it run."""

from __future__ import annotations

from dagster import BackfillPolicy, DailyPartitionsDefinition

PARTITIONS_START = "2024-01-01"

# A day is a partition once it has closed (end_offset=0): landing files for day D arrive after D.
daily_partitions = DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC")

# A backfill of many days is one run (one Iceberg commit per asset), not one process per day.
single_run_backfill = BackfillPolicy.single_run()
