"""The only modules that touch Iceberg, the landing zone's storage and DuckDB connections."""
