"""int_*: cross-source joins that several marts share, built once (`tables.yml` + SQL)."""

from pathlib import Path

from marts_project.transform import sql_layer

INTERMEDIATE = "intermediate"

intermediate_assets = sql_layer(INTERMEDIATE, Path(__file__).parent)
