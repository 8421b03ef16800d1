"""A short, human-readable summary of the published marts, read from the serving databases."""

from marts_project.marts import ALL_MARTS
from marts_project.resources.iceberg_io import table_identifier
from marts_project.resources.serving import ServingDatabase

HEADLINES = {
    "marketing.mkt_campaign_performance_fact": "sum(spend) as spend, sum(leads) as leads, "
    "sum(mqls) as mqls, round(sum(spend) / nullif(sum(leads), 0), 2) as cost_per_lead",
    "finance.fin_revenue_daily_fact": "sum(gross_revenue) as gross, sum(refunds) as refunds, "
    "sum(net_revenue) as net",
    "finance.fin_pnl_monthly_agg": "sum(net_revenue) as net_revenue, "
    "sum(marketing_cost) as marketing_cost, sum(contribution) as contribution",
    "operations.ops_fulfillment_sla_fact": "round(sum(shipped_within_sla) / sum(orders), 3) "
    "as share_shipped_within_sla",
}


def mart_summary(serving: ServingDatabase) -> str:
    """Rows, period covered and headline figures of every mart, as the operator's view of the
    serving databases shows them (a regulated mart is only named: reading it is audited)."""
    lines = [f"serving databases: {serving.root}"]
    with serving.operator_view() as con:
        served = {
            f"{s}.{t}"
            for s, t in con.execute(
                "select table_schema, table_name from information_schema.tables"
            ).fetchall()
        }
        for mart in ALL_MARTS:
            identifier = table_identifier(mart.asset.key)
            if mart.contract.regulated:
                lines.append(
                    f"  {identifier:<45} regulated: `marts sql --mart {mart.contract.name}` "
                    "(audited)"
                )
                continue
            if identifier not in served:
                lines.append(f"  {identifier:<45} not published yet")
                continue
            column = mart.contract.partition_column
            span = f', min("{column}"), max("{column}")' if column else ", null, null"
            rows, first, last = con.execute(f"select count(*){span} from {identifier}").fetchall()[
                0
            ]
            period = f"  {first} .. {last}" if column else ""
            unit = "row " if rows == 1 else "rows"
            lines.append(f"  {identifier:<45} {rows:>7} {unit}{period}")
            if identifier in HEADLINES:
                cursor = con.execute(f"select {HEADLINES[identifier]} from {identifier}")
                names = [d[0] for d in cursor.description]
                values = cursor.fetchall()[0]
                lines.append(
                    "      " + ", ".join(f"{n} {v}" for n, v in zip(names, values, strict=True))
                )
    return "\n".join(lines)
