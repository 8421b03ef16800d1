"""A short, human-readable summary of the published marts."""

from __future__ import annotations

import duckdb

from marts_project.definitions import MART_CONTRACTS, open_resource
from marts_project.resources.iceberg_io import table_identifier
from marts_project.settings import Settings


def mart_summary(settings: Settings) -> str:
    """Rows, days covered and headline totals per mart."""
    warehouse = open_resource(settings, "warehouse")
    lines = []
    for asset_def, contract in MART_CONTRACTS.items():
        identifier = table_identifier(asset_def.key)
        if not warehouse.table_exists(identifier):
            lines.append(f"{identifier}: not materialized yet")
            continue
        table = warehouse.load_table(identifier)
        data = table.scan().to_arrow()
        day = contract.partition_column
        con = duckdb.connect()
        con.register("mart", data)
        rows, days, first, last = con.sql(
            f'select count(*), count(distinct "{day}"), min("{day}"), max("{day}") from mart'
        ).fetchall()[0]
        lines.append(
            f"{identifier}: {rows} rows, {days} days ({first} .. {last}), "
            f"snapshot {table.current_snapshot().snapshot_id}"
        )
        if contract.name == "mkt_campaign_performance_fact":
            spend, leads, mqls, clicks = con.sql(
                "select sum(spend), sum(leads), sum(mqls), sum(clicks) from mart"
            ).fetchall()[0]
            lines.append(
                f"  spend ${spend:,.2f}, clicks {clicks:,}, leads {leads:,}, MQLs {mqls:,}, "
                f"cost per lead ${spend / max(leads, 1):,.2f}"
            )
    return "\n".join(lines)
