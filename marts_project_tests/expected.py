"""Independent expectations: every mart recomputed by hand-written DuckDB straight over the
landing CSV files, from the contracts' definitions; none of the project's SQL is used."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa

from marts_project.resources.duck import connect
from marts_project.resources.landing import LandingZone

# Landing files as the source systems write them, typed by hand (not from sources.yml).
LANDING_COLUMNS = {
    "mkt_ad_stats": "stat_date date, ad_id varchar, campaign_id varchar, impressions bigint, "
    "clicks bigint, spend decimal(18,2), currency varchar, conversions bigint, "
    "extracted_at varchar",
    "mkt_crm_leads": "lead_id varchar, created_at timestamptz, email varchar, "
    "full_name varchar, campaign_id varchar, is_mql boolean",
    "mkt_campaigns": "snapshot_date date, campaign_id varchar, campaign_name varchar, "
    "channel varchar, platform varchar, status varchar, daily_budget varchar, "
    "channel_owner varchar, cost_model varchar",
    "shop_orders": "order_id varchar, ordered_at timestamptz, customer_id varchar, "
    "customer_email varchar, sales_channel varchar, warehouse_id varchar, items integer, "
    "gross_amount decimal(18,2), currency varchar",
    "psp_payments": "payment_id varchar, order_id varchar, paid_at timestamptz, "
    "amount decimal(18,2), method varchar",
    "psp_refunds": "refund_id varchar, order_id varchar, refunded_at timestamptz, "
    "amount decimal(18,2), reason varchar",
    "wms_shipments": "shipment_id varchar, order_id varchar, warehouse_id varchar, "
    "shipped_at timestamptz, carrier varchar",
    "wms_inventory": "snapshot_date date, warehouse_id varchar, sku varchar, on_hand integer, "
    "reserved integer, reorder_point integer",
    "wms_warehouses": "snapshot_date date, warehouse_id varchar, warehouse_name varchar, "
    "region varchar, sla_hours integer, capacity_units bigint",
}


def landing_connection(
    landing: LandingZone, days: list[dt.date], scratch: Path, load: bool = False
):
    """DuckDB over the landing files for `days`: one relation per source with its contract's
    rules applied. Views by default (tests); with `load`, each file is parsed once into a table
    and the shared relations are tables too (the benchmark floor). A local landing zone is read
    in place; an S3 one is copied to `scratch` first."""
    con = connect()
    kind = "table" if load else "view"
    local = "://" not in landing.root
    for source, columns in LANDING_COLUMNS.items():
        if local:
            files = [f"{landing.root.rstrip('/')}/{landing.key(source, day)}" for day in days]
        else:
            folder = scratch / source
            folder.mkdir(parents=True, exist_ok=True)
            files = []
            for day in days:
                (folder / f"{day}.csv").write_bytes(landing.read_bytes(source, day))
                files.append(str(folder / f"{day}.csv"))
        spec = ", ".join(
            f"'{name}': '{typ}'"
            for name, typ in (c.strip().split(" ", 1) for c in columns.split(", "))
        )
        con.execute(
            f"create view {source}_files as select * from read_csv({files!r}, "
            f"header = true, columns = {{{spec}}}, filename = true)"
        )
        rule = _RULES.get(source, "select * from {0}_files").format(source)
        con.execute(f"create {kind} {source} as {rule}")
    # Order events carry their order date in the file name, as the sources export them.
    for source in ("psp_payments", "psp_refunds", "wms_shipments"):
        con.execute(
            f"create {kind} {source}_dated as select *, "
            "regexp_extract(filename, '(\\d{4}-\\d{2}-\\d{2})\\.csv$', 1)::date as order_date "
            f"from {source}"
        )
    con.execute(_ORDERS.format(kind=kind))
    con.execute(_CAMPAIGN_DAY.format(kind=kind))
    return con


# The source contracts' rules, written out by hand: which rows count and which duplicate wins.
_FILE_DAY = "regexp_extract(filename, '(\\d{{4}}-\\d{{2}}-\\d{{2}})\\.csv$', 1)::date"
_RULES = {
    # spend is USD; a row may come up to 3 days late; a restatement (a later extracted_at, in
    # any file) replaces the earlier row
    "mkt_ad_stats": "select * from {0}_files where upper(currency) = 'USD' "
    f"and stat_date between {_FILE_DAY} - 3 and {_FILE_DAY} "
    "qualify row_number() over (partition by ad_id, stat_date "
    "order by extracted_at::timestamptz desc, filename desc) = 1",
    # a lead may be exported a day late; exported again, the latest file wins
    "mkt_crm_leads": "select * from {0}_files "
    f"where created_at::date between {_FILE_DAY} - 1 and {_FILE_DAY} "
    "qualify row_number() over (partition by lead_id order by filename desc) = 1",
    "shop_orders": "select * from {0}_files where upper(currency) = 'USD' "
    f"and ordered_at::date between {_FILE_DAY} - 1 and {_FILE_DAY} "
    "qualify row_number() over (partition by order_id order by filename desc) = 1",
}

_ORDERS = """
create {kind} orders_final as
with paid as (
    select order_id, sum(amount) as paid from psp_payments_dated group by all
), refunds as (
    select order_id, sum(amount) as refunded, count(*) as refund_count
    from psp_refunds_dated group by all
), shipped as (
    select order_id, min(shipped_at) as shipped_at from wms_shipments_dated group by all
)
select o.order_id, o.ordered_at::date as order_date, o.ordered_at, o.sales_channel,
       o.warehouse_id, o.items, o.gross_amount, coalesce(p.paid, 0) as paid,
       coalesce(r.refunded, 0) as refunded, coalesce(r.refund_count, 0) as refund_count,
       s.shipped_at
from shop_orders o
left join paid p on p.order_id = o.order_id
left join refunds r on r.order_id = o.order_id
left join shipped s on s.order_id = o.order_id
"""

_CAMPAIGN_DAY = """
create {kind} campaign_day as
with ads as (
    select stat_date, campaign_id, sum(impressions) as impressions, sum(clicks) as clicks,
           sum(spend) as spend, sum(conversions) as conversions
    from mkt_ad_stats group by all
), leads as (
    select created_at::date as stat_date, campaign_id, count(*) as leads,
           count(*) filter (where is_mql) as mqls
    from mkt_crm_leads where campaign_id is not null group by all
)
select coalesce(a.stat_date, l.stat_date) as stat_date,
       coalesce(a.campaign_id, l.campaign_id) as campaign_id,
       coalesce(c.channel, 'unknown') as channel,
       coalesce(impressions, 0) as impressions, coalesce(clicks, 0) as clicks,
       coalesce(spend, 0) as spend, coalesce(conversions, 0) as conversions,
       coalesce(leads, 0) as leads, coalesce(mqls, 0) as mqls
from ads a full join leads l on a.stat_date = l.stat_date and a.campaign_id = l.campaign_id
left join mkt_campaigns c
  on c.campaign_id = coalesce(a.campaign_id, l.campaign_id)
 and c.snapshot_date = coalesce(a.stat_date, l.stat_date)
"""

# mart -> (columns compared, the independent query producing them in that order)
EXPECTED: dict[str, tuple[str, str]] = {
    "marketing.mkt_campaign_performance_fact": (
        "stat_date, campaign_id, channel, impressions, clicks, platform_conversions, leads, mqls, "
        "spend",
        "select stat_date, campaign_id, channel, impressions, clicks, conversions, leads, mqls, "
        "spend::decimal(18,2) from campaign_day",
    ),
    "marketing.mkt_attribution_funnel_agg": (
        "week_start, channel, impressions, clicks, leads, mqls, spend",
        "select date_trunc('week', stat_date)::date, channel, sum(impressions), sum(clicks), "
        "sum(leads), sum(mqls), sum(spend)::decimal(18,2) from campaign_day group by all",
    ),
    "finance.fin_revenue_daily_fact": (
        "order_date, sales_channel, orders, items, gross_revenue, refunds, net_revenue, "
        "refunded_orders",
        "select order_date, sales_channel, count(*), sum(items), sum(gross_amount), "
        "sum(refunded), sum(gross_amount) - sum(refunded), count(*) filter (where refunded > 0) "
        "from orders_final group by all",
    ),
    "finance.fin_payment_reconciliation_fact": (
        "order_date, orders, paid_orders, underpaid_orders, unpaid_orders, amount_ordered, "
        "amount_captured, payment_gap",
        "select order_date, count(*), count(*) filter (where paid >= gross_amount), "
        "count(*) filter (where paid > 0 and paid < gross_amount), "
        "count(*) filter (where paid = 0), sum(gross_amount), sum(paid), "
        "sum(gross_amount) - sum(paid) from orders_final group by all",
    ),
    "finance.fin_pnl_monthly_agg": (
        "month_start, orders, gross_revenue, refunds, net_revenue, marketing_cost, contribution",
        "with r as (select date_trunc('month', order_date)::date as m, count(*) as orders, "
        "sum(gross_amount) as gross, sum(refunded) as refunds from orders_final group by all), "
        "c as (select date_trunc('month', stat_date)::date as m, sum(spend) as cost "
        "from mkt_ad_stats group by all) "
        "select r.m, orders, gross, refunds, gross - refunds, cost::decimal(18,2), "
        "(gross - refunds - cost)::decimal(18,2) from r join c using (m)",
    ),
    "operations.ops_orders_fact": (
        "order_id, order_date, warehouse_id, items, gross_amount, is_paid, shipped_at, "
        "order_status",
        "select order_id, order_date, warehouse_id, items, gross_amount, paid >= gross_amount, "
        "shipped_at, case when refund_count > 0 then 'refunded' when shipped_at is not null "
        "then 'shipped' else 'awaiting_shipment' end from orders_final",
    ),
    "operations.ops_fulfillment_sla_fact": (
        "order_date, warehouse_id, sla_hours, orders, shipped_orders, shipped_within_sla",
        "select o.order_date, o.warehouse_id, w.sla_hours, count(*), count(shipped_at), "
        "count(*) filter (where shipped_at - ordered_at <= to_hours(w.sla_hours)) "
        "from orders_final o join wms_warehouses w on w.warehouse_id = o.warehouse_id "
        "and w.snapshot_date = o.order_date group by all",
    ),
    "operations.ops_inventory_position_fact": (
        "snapshot_date, warehouse_id, sku, on_hand, reserved, available, below_reorder_point",
        "select snapshot_date, warehouse_id, sku, on_hand, reserved, on_hand - reserved, "
        "on_hand - reserved < reorder_point from wms_inventory",
    ),
    "operations.ops_warehouse_dim": (
        "warehouse_id, warehouse_name, region, sla_hours, as_of_date",
        "select warehouse_id, warehouse_name, region, sla_hours, snapshot_date "
        "from wms_warehouses qualify snapshot_date = max(snapshot_date) over ()",
    ),
    "marketing.mkt_active_campaigns_v": (
        "campaign_id, channel, last_active_date, spend_7d, leads_7d, mqls_7d",
        "select campaign_id, coalesce(arg_max(channel, stat_date) filter "
        "(where channel <> 'unknown'), 'unknown'), max(stat_date) filter (where spend > 0), "
        "sum(spend)::decimal(18,2), sum(leads), sum(mqls) "
        "from campaign_day where stat_date > (select max(stat_date) from campaign_day) - 7 "
        "group by campaign_id having sum(spend) > 0",
    ),
}


def differences(con, actual: pa.Table, columns: str, expected_sql: str) -> list[tuple]:
    """Rows in one side but not the other (multiset difference, both ways)."""
    con.register("actual", actual)
    return con.execute(
        f"(select {columns} from actual except all ({expected_sql})) union all "
        f"(({expected_sql}) except all select {columns} from actual)"
    ).fetchall()


def channel_versions(con) -> list[tuple]:
    """The SCD history of channel attributes, walked day by day in Python."""
    rows = con.execute(
        "select distinct channel, snapshot_date, platform, channel_owner, cost_model "
        "from mkt_campaigns order by channel, snapshot_date"
    ).fetchall()
    versions, last = [], {}
    for channel, day, *attrs in rows:
        if last.get(channel) != attrs:
            versions.append((channel, day, *attrs))
            last[channel] = attrs
    return sorted(versions)


def expected_campaign_performance(
    landing: LandingZone, days: list[dt.date], scratch: Path
) -> list[tuple]:
    """The marketing fact's business columns, for tests of the marketing path alone."""
    con = landing_connection(landing, days, scratch)
    return sorted(con.execute(EXPECTED["marketing.mkt_campaign_performance_fact"][1]).fetchall())


def mart_rows(table: pa.Table) -> list[tuple]:
    """The marketing fact's business columns as sorted tuples (no refresh timestamps)."""
    names = [c.strip() for c in EXPECTED["marketing.mkt_campaign_performance_fact"][0].split(",")]
    return sorted(tuple(r[c] for c in names) for r in table.select(names).to_pylist())


def mismatches(lake, days: list[dt.date], scratch: Path) -> dict[str, list[tuple]]:
    """Every mart against its independent recompute, and every served table against Iceberg:
    {what: differing rows} for whatever disagrees (empty when all is right)."""
    con = landing_connection(lake.landing, days, scratch)
    serving = lake.serving()
    found: dict[str, list[tuple]] = {}
    for identifier, (columns, sql) in EXPECTED.items():
        actual = (
            serving.read(identifier)
            if identifier.endswith("_v")
            else lake.warehouse.read(identifier)
        )
        if diff := differences(con, actual, columns, sql):
            found[identifier] = diff[:10]
    for identifier in [i for i in EXPECTED if not i.endswith("_v")]:
        iceberg = lake.warehouse.read(identifier)
        con.register("iceberg", iceberg)
        con.register("served", serving.read(identifier))
        diff = con.execute(
            "(select * from iceberg except all select * from served) union all "
            "(select * from served except all select * from iceberg)"
        ).fetchall()
        if diff:
            found[f"serving {identifier}"] = diff[:10]
    return found
