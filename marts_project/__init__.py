"""marts: a Dagster asset-based lakehouse of Iceberg tables, from landing files to data marts."""
