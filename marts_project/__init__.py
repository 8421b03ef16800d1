"""marts: a Dagster asset-based lakehouse of Iceberg tables, from landing files to data marts."""

# Importing the package defines things and nothing else: each entry point sets its process up
# first (marts_project/process.py).
