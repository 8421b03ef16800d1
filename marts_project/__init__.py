"""marts: a Dagster asset-based lakehouse of Iceberg tables, from landing files to data marts."""

import warnings

# We use single-run backfill policies and partitioned asset checks on purpose (range runs and
# per-day checks are the design); their beta/preview notices would only bury real warnings.
warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview)")
# pyiceberg warns when an overwrite's filter matches no rows: the first write of each day.
warnings.filterwarnings("ignore", message="Delete operation did not match any records")
