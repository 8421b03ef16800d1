"""Each rule a contract states, proven on tiny literal tables through the project's own SQL
(expected values are written here by hand, from the rule's words)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

import marts_project
from marts_project.marts import ALL_MARTS
from marts_project.resources.duck import UtcDuckDB
from marts_project.resources.sql import run_sql

pytestmark = pytest.mark.quick  # the unit tier: `pytest -m quick`

PACKAGE = Path(marts_project.__file__).parent
DAY = dt.date(2026, 10, 5)
REFRESHED = dt.datetime(2026, 10, 20, tzinfo=dt.UTC)
UTC = dt.UTC


def at(hours: float, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=UTC) + dt.timedelta(hours=hours)


def sql(path: str, tables: dict[str, pa.Table], refreshed_at: dt.datetime = REFRESHED) -> list:
    result = run_sql(
        UtcDuckDB(database=":memory:"), PACKAGE / path, tables, {"refreshed_at": refreshed_at}
    )
    return result.to_pylist()


def orders_enriched(shipped: dict[str, dt.datetime | None]) -> pa.Table:
    """int_orders_enriched (through its own SQL) for orders placed at DAY 00:00, W01."""
    ids = list(shipped)
    ts = pa.timestamp("us", "UTC")
    tables = {
        "stg_shop_orders": pa.table(
            {
                "order_id": ids,
                "order_date": [DAY] * len(ids),
                "ordered_at": pa.array([at(0)] * len(ids), ts),
                "customer_id": ["c"] * len(ids),
                "sales_channel": ["web"] * len(ids),
                "warehouse_id": ["W01"] * len(ids),
                "items": [1] * len(ids),
                "gross_amount": [Decimal("10.00")] * len(ids),
            }
        ),
        "stg_psp_payments": pa.table(
            {
                "order_id": pa.array([], pa.string()),
                "amount": pa.array([], pa.decimal128(18, 2)),
                "paid_at": pa.array([], ts),
            }
        ),
        "stg_psp_refunds": pa.table(
            {
                "order_id": pa.array([], pa.string()),
                "amount": pa.array([], pa.decimal128(18, 2)),
                "refunded_at": pa.array([], ts),
            }
        ),
        "stg_wms_shipments": pa.table(
            {
                "order_id": [i for i, t in shipped.items() if t],
                "shipped_at": pa.array([t for t in shipped.values() if t], ts),
            }
        ),
    }
    return pa.Table.from_pylist(sql("intermediate/int_orders_enriched.sql", tables))


def fulfillment(shipped: dict, refreshed_at: dt.datetime = REFRESHED) -> dict:
    warehouses = pa.table({"warehouse_id": ["W01"], "snapshot_date": [DAY], "sla_hours": [24]})
    (row,) = sql(
        "marts/operations/ops_fulfillment_sla_fact.sql",
        {"int_orders_enriched": orders_enriched(shipped), "stg_wms_warehouses": warehouses},
        refreshed_at,
    )
    return row


def test_within_sla_is_judged_on_exact_timestamps_inclusive():
    row = fulfillment(
        {
            "exactly_24h": at(24),  # within: <= is inclusive
            "24h_and_9s": at(24.0025),  # 24.0025 h: rounds to 24.00 but is late
            "unshipped": None,  # counts in orders, never within SLA
        }
    )
    assert (row["orders"], row["shipped_orders"], row["shipped_within_sla"]) == (3, 2, 1)
    assert row["share_shipped_within_sla"] == round(1 / 3, 6)


def test_the_average_is_of_exact_hours_rounded_once():
    # 32.63 h and 32.6392 h: exact mean 32.6346 -> 32.63 (rounding each first would give 32.64)
    row = fulfillment({"a": at(32.63), "b": at(32.6392)})
    assert row["avg_hours_to_ship"] == 32.63


@pytest.mark.parametrize(
    ("refreshed_at", "closed"),
    [(at(24 + 24), True), (at(24 + 24) - dt.timedelta(microseconds=1), False)],
)
def test_sla_window_closes_at_day_end_plus_sla_on_the_refresh_clock(refreshed_at, closed):
    assert fulfillment({"a": at(2)}, refreshed_at)["sla_window_closed"] is closed


def performance(rows: list[tuple]) -> pa.Table:
    """mkt_campaign_performance_fact rows: (day, campaign, name, channel, spend, leads)."""
    return pa.table(
        {
            "stat_date": [r[0] for r in rows],
            "campaign_id": [r[1] for r in rows],
            "campaign_name": [r[2] for r in rows],
            "channel": [r[3] for r in rows],
            "spend": pa.array([Decimal(r[4]) for r in rows], pa.decimal128(18, 2)),
            "leads": [r[5] for r in rows],
            "mqls": [0 for _ in rows],
        }
    )


def test_active_campaigns_list_a_campaign_once_with_its_latest_known_channel():
    d = [DAY + dt.timedelta(days=i) for i in range(4)]
    fact = performance(
        [
            (d[0], "c1", "spring 1", "search", "10.00", 1),
            (d[1], "c1", "spring 1b", "search", "5.00", 0),
            (d[2], "c1", "unknown", "unknown", "2.50", 1),  # missing from that day's catalog
            (d[3], "c1", "unknown", "unknown", "0.00", 2),  # leads, no spend
            (d[3], "c2", "brand 2", "social", "0.00", 3),  # never spent: not active
        ]
    )
    channels = pa.table(
        {"channel": ["search"], "channel_owner": ["ana.ruiz"], "is_current": [True]}
    )
    rows = sql(
        "marts/marketing/mkt_active_campaigns_v.sql",
        {"mkt_campaign_performance_fact": fact, "mkt_channel_dim": channels},
    )
    assert rows == [
        {
            "campaign_id": "c1",
            "campaign_name": "spring 1b",
            "channel": "search",
            "channel_owner": "ana.ruiz",
            "last_active_date": d[2],
            "spend_7d": Decimal("17.50"),
            "leads_7d": 4,
            "mqls_7d": 0,
            "cost_per_lead_7d": 4.375,
        }
    ]


def test_a_channel_change_back_opens_a_new_version():
    owners = ["ana", "ben", "ben", "ana"]  # A -> B -> A: three versions
    days = [DAY + dt.timedelta(days=i) for i in range(len(owners))]
    catalog = pa.table(
        {
            "snapshot_date": days,
            "campaign_id": ["c1"] * 4,
            "channel": ["search"] * 4,
            "platform": ["google_ads"] * 4,
            "channel_owner": owners,
            "cost_model": ["cpc"] * 4,
        }
    )
    rows = sql("marts/marketing/mkt_channel_dim.sql", {"stg_mkt_campaigns": catalog})
    versions = sorted(
        (
            r["channel_version_key"],
            r["channel_owner"],
            r["valid_from"],
            r["valid_to"],
            r["is_current"],
        )
        for r in rows
    )
    assert versions == [
        ("search#1", "ana", days[0], days[1], False),
        ("search#2", "ben", days[1], days[3], False),
        ("search#3", "ana", days[3], None, True),
    ]


def test_every_contract_states_its_rules_for_consumers():
    for mart in ALL_MARTS:
        topics = dict(mart.contract.rules)
        assert topics, f"{mart.contract.name} states no rules"
        assert "Rules:" in mart.contract.description


def test_a_view_whose_new_definition_fails_its_audit_keeps_serving_the_old_one(tmp_path):
    from marts_project.resources.serving import ServingDatabase, ViewAuditError

    serving = ServingDatabase(root=str(tmp_path / "serving"))
    serving.create_view("marketing.v", "select 1 as campaign_id", lambda rows: [])

    def unique(rows: pa.Table) -> list[str]:
        ids = rows.column("campaign_id").to_pylist()
        return [] if len(ids) == len(set(ids)) else ["unique_key: duplicate campaign_id"]

    with pytest.raises(ViewAuditError, match="duplicate campaign_id"):
        serving.create_view("marketing.v", "select 2 as campaign_id union all select 2", unique)
    assert serving.read("marketing.v").to_pylist() == [{"campaign_id": 1}]
