"""Independent expectations: the marketing mart computed by hand-written DuckDB over the raw
landing CSV files, following the contract's definitions, not the project's SQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from marts_project.resources.landing import LandingZone

MART_COLUMNS = [
    "stat_date",
    "campaign_id",
    "impressions",
    "clicks",
    "spend",
    "platform_conversions",
    "leads",
    "mqls",
]


def copy_landing(landing: LandingZone, source: str, days: list[dt.date], into: Path) -> str:
    """Copy landing files (local or S3) to a local folder and return a glob DuckDB can read."""
    folder = into / source
    folder.mkdir(parents=True, exist_ok=True)
    for day in days:
        (folder / f"{day}.csv").write_bytes(landing.read_bytes(source, day))
    return str(folder / "*.csv")


def expected_campaign_performance(
    landing: LandingZone, days: list[dt.date], scratch: Path
) -> list[tuple]:
    ads = copy_landing(landing, "mkt_ad_stats", days, scratch)
    leads = copy_landing(landing, "mkt_crm_leads", days, scratch)
    con = duckdb.connect()
    return con.sql(
        f"""
        with ads as (
            select stat_date, campaign_id, sum(impressions) as impressions, sum(clicks) as clicks,
                   sum(spend) as spend, sum(conversions) as conversions
            from read_csv('{ads}', header = true, columns = {{
                'stat_date': 'date', 'ad_id': 'varchar', 'campaign_id': 'varchar',
                'impressions': 'bigint', 'clicks': 'bigint', 'spend': 'decimal(18,2)',
                'currency': 'varchar', 'conversions': 'bigint', 'extracted_at': 'varchar'}})
            group by all
        ),
        leads as (
            select cast(created_at as date) as stat_date, campaign_id,
                   count(*) as leads, count(*) filter (where is_mql) as mqls
            from read_csv('{leads}', header = true, columns = {{
                'lead_id': 'varchar', 'created_at': 'timestamptz', 'email': 'varchar',
                'full_name': 'varchar', 'campaign_id': 'varchar', 'is_mql': 'boolean'}})
            where campaign_id is not null
            group by all
        )
        select coalesce(a.stat_date, l.stat_date), coalesce(a.campaign_id, l.campaign_id),
               coalesce(impressions, 0), coalesce(clicks, 0), coalesce(spend, 0)::decimal(18,2),
               coalesce(conversions, 0), coalesce(leads, 0), coalesce(mqls, 0)
        from ads a full join leads l
          on a.stat_date = l.stat_date and a.campaign_id = l.campaign_id
        order by 1, 2
        """
    ).fetchall()


def mart_rows(table) -> list[tuple]:
    """The mart's business columns as sorted tuples (no refresh timestamps)."""
    rows = table.select(MART_COLUMNS).to_pylist()
    return sorted(tuple(r[c] for c in MART_COLUMNS) for r in rows)
