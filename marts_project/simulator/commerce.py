"""Shop, payment and warehouse sources: orders, payments, refunds (weeks late), shipments (days
late), daily inventory snapshots and the warehouse master.

Order events (payments, refunds, shipments) are exported per *order date*: the file of day D
holds every event so far for orders placed on D, and is rewritten as later events arrive. That
is what makes refunds and shipments late data for past partitions.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from decimal import Decimal

from marts_project.simulator.core import SimConfig, rng_for, to_csv

WAREHOUSES = {
    # id: (name, region, base SLA hours, capacity in units)
    "W01": ("Rotterdam DC", "eu-west", 24, 120_000),
    "W02": ("Leipzig DC", "eu-central", 24, 90_000),
    "W03": ("Madrid hub", "eu-south", 48, 40_000),
    "W04": ("Dublin hub", "eu-west", 48, 30_000),
}
WAREHOUSE_IDS = tuple(sorted(WAREHOUSES))
SALES_CHANNELS = ("web", "app", "marketplace")
PAYMENT_METHODS = ("card", "paypal", "bank_transfer")
REFUND_REASONS = ("damaged", "late_delivery", "changed_mind", "wrong_item")
CARRIERS = ("dhl", "ups", "postnl")


@dataclass(frozen=True)
class Order:
    order_id: str
    ordered_at: dt.datetime
    customer_id: str
    customer_email: str
    sales_channel: str
    warehouse_id: str
    items: int
    gross_amount: Decimal


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


@functools.lru_cache(maxsize=64)
def orders(cfg: SimConfig, day: dt.date) -> tuple[Order, ...]:
    """Orders placed on one day (about half the ad rows per day)."""
    rng = rng_for(cfg, "orders", day)
    result = []
    for i in range(max(5, cfg.rows_per_day // 2)):
        customer = rng.randrange(max(50, cfg.rows_per_day * 20))
        items = rng.choice((1, 1, 1, 2, 2, 3, 4, 5))
        amount = sum(Decimal(f"{rng.uniform(8, 120):.2f}") for _ in range(items))
        result.append(
            Order(
                order_id=f"O{day:%Y%m%d}{i:05d}",
                ordered_at=_day_start(day) + dt.timedelta(seconds=rng.randrange(86400)),
                customer_id=f"C{customer:07d}",
                customer_email=f"customer{customer}@example.org",
                sales_channel=rng.choice(SALES_CHANNELS),
                warehouse_id=rng.choice(WAREHOUSE_IDS),
                items=items,
                gross_amount=amount,
            )
        )
    return tuple(result)


def render_orders(cfg: SimConfig, day: dt.date, as_of: dt.datetime) -> bytes:
    header = [
        "order_id",
        "ordered_at",
        "customer_id",
        "customer_email",
        "sales_channel",
        "warehouse_id",
        "items",
        "gross_amount",
        "currency",
    ]
    return to_csv(
        header,
        [
            [
                o.order_id,
                o.ordered_at.isoformat(),
                o.customer_id,
                o.customer_email,
                o.sales_channel,
                o.warehouse_id,
                o.items,
                o.gross_amount,
                "USD",
            ]
            for o in orders(cfg, day)
        ],
    )


def render_payments(cfg: SimConfig, day: dt.date, as_of: dt.datetime) -> bytes:
    """Payments of the day's orders; 3 % never pay, 2 % pay short."""
    header = ["payment_id", "order_id", "paid_at", "amount", "method"]
    rng = rng_for(cfg, "payment", day)  # every draw made whatever `as_of`: same stream
    rows = []
    for order in orders(cfg, day):
        never, minutes, short = rng.random(), rng.randrange(1, 180), rng.random()
        method = rng.choice(PAYMENT_METHODS)
        paid_at = order.ordered_at + dt.timedelta(minutes=minutes)
        if never < 0.03 or paid_at > as_of:
            continue
        amount = order.gross_amount
        if short < 0.02:
            amount = (amount * Decimal("0.9")).quantize(Decimal("0.01"))
        rows.append([f"P{order.order_id[1:]}", order.order_id, paid_at.isoformat(), amount, method])
    return to_csv(header, rows)


def render_refunds(cfg: SimConfig, day: dt.date, as_of: dt.datetime) -> bytes:
    """Refunds against the day's orders processed by `as_of` (they come 2..28 days later)."""
    header = ["refund_id", "order_id", "refunded_at", "amount", "reason"]
    rng = rng_for(cfg, "refund", day)  # every draw made whatever `as_of`: same stream
    rows = []
    for order in orders(cfg, day):
        refunded, hours = rng.random(), rng.randrange(48, 24 * max(3, cfg.refund_max_days))
        share = Decimal("1") if rng.random() < 0.7 else Decimal("0.5")
        reason = rng.choice(REFUND_REASONS)
        refunded_at = order.ordered_at + dt.timedelta(hours=hours)
        if refunded >= cfg.refund_share or refunded_at > as_of:
            continue
        rows.append(
            [
                f"R{order.order_id[1:]}",
                order.order_id,
                refunded_at.isoformat(),
                (order.gross_amount * share).quantize(Decimal("0.01")),
                reason,
            ]
        )
    return to_csv(header, rows)


@functools.lru_cache(maxsize=64)
def shipments(cfg: SimConfig, day: dt.date) -> tuple[tuple[Order, float, str], ...]:
    """(order, hours from order to shipment, carrier) of the day's orders that ship: 2 % are
    cancelled and never do, late_share / 3 are backordered for two to ten days."""
    rng = rng_for(cfg, "ship", day)  # every draw made for every order: same stream
    result = []
    for order in orders(cfg, day):
        cancelled, backordered = rng.random() < 0.02, rng.random() < cfg.late_share / 3
        hours = rng.uniform(48, 240) if backordered else rng.uniform(2, 40)
        carrier = rng.choice(CARRIERS)
        if not cancelled:
            result.append((order, hours, carrier))
    return tuple(result)


def render_shipments(cfg: SimConfig, day: dt.date, as_of: dt.datetime) -> bytes:
    """Shipments of the day's orders that left a warehouse by `as_of` (hours to days later)."""
    header = ["shipment_id", "order_id", "warehouse_id", "shipped_at", "carrier"]
    rows = []
    for order, hours, carrier in shipments(cfg, day):
        shipped_at = order.ordered_at + dt.timedelta(hours=hours)
        if shipped_at <= as_of:
            rows.append(
                [
                    f"S{order.order_id[1:]}",
                    order.order_id,
                    order.warehouse_id,
                    shipped_at.isoformat(timespec="seconds"),
                    carrier,
                ]
            )
    return to_csv(header, rows)


def skus(cfg: SimConfig) -> list[str]:
    return [f"SKU{i:04d}" for i in range(max(5, cfg.rows_per_day // 10))]


@functools.lru_cache(maxsize=8)
def _stock_levels(cfg: SimConfig) -> tuple[tuple[str, str, int, int], ...]:
    """(warehouse, sku, typical level, reorder point): the same every day."""
    rng = rng_for(cfg, "stock")
    return tuple(
        (warehouse, sku, rng.randrange(50, 800), rng.randrange(20, 120))
        for warehouse in sorted(WAREHOUSES)
        for sku in skus(cfg)
    )


def render_inventory(cfg: SimConfig, day: dt.date, as_of: dt.datetime) -> bytes:
    """End-of-day stock per warehouse and SKU."""
    header = ["snapshot_date", "warehouse_id", "sku", "on_hand", "reserved", "reorder_point"]
    rng = rng_for(cfg, "stock", day)
    rows = []
    for warehouse, sku, level, reorder in _stock_levels(cfg):
        on_hand = max(0, level + int(rng.gauss(0, level / 3)))
        reserved = min(on_hand, rng.randrange(0, 60))
        rows.append([day.isoformat(), warehouse, sku, on_hand, reserved, reorder])
    return to_csv(header, rows)


def sla_hours(warehouse_id: str, day: dt.date) -> int:
    """SLA promised by a warehouse; the Madrid hub moved to next-day shipping on 2026-07-01."""
    base = WAREHOUSES[warehouse_id][2]
    return 24 if warehouse_id == "W03" and day >= dt.date(2026, 7, 1) else base


def render_warehouses(cfg: SimConfig, day: dt.date, as_of: dt.datetime) -> bytes:
    """Daily snapshot of the warehouse master data."""
    header = [
        "snapshot_date",
        "warehouse_id",
        "warehouse_name",
        "region",
        "sla_hours",
        "capacity_units",
    ]
    return to_csv(
        header,
        [
            [day.isoformat(), wid, name, region, sla_hours(wid, day), capacity]
            for wid, (name, region, _, capacity) in sorted(WAREHOUSES.items())
        ],
    )


SOURCES = {
    "shop_orders": render_orders,
    "psp_payments": render_payments,
    "psp_refunds": render_refunds,
    "wms_shipments": render_shipments,
    "wms_inventory": render_inventory,
    "wms_warehouses": render_warehouses,
}
