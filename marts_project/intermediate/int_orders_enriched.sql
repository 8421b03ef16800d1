-- grain: one row per order with its payments, refunds and shipment folded in; the shared
-- definition of an order's revenue and fulfilment that finance and operations marts both use
with orders as (
    select * from stg_shop_orders
),

payments as (
    select * from stg_psp_payments
),

refunds as (
    select * from stg_psp_refunds
),

shipments as (
    select * from stg_wms_shipments
),

paid as (
    select order_id, sum(amount) as amount_paid, min(paid_at) as first_paid_at
    from payments
    group by order_id
),

refunded as (
    select
        order_id,
        sum(amount) as amount_refunded,
        count(*) as refund_count,
        min(refunded_at) as first_refunded_at
    from refunds
    group by order_id
),

shipped as (
    select order_id, min(shipped_at) as shipped_at
    from shipments
    group by order_id
),

final as (
    select
        o.order_id,
        o.order_date,
        o.ordered_at,
        o.customer_id,
        o.sales_channel,
        o.warehouse_id,
        o.items,
        o.gross_amount,
        coalesce(p.amount_paid, 0)::decimal(18, 2) as amount_paid,
        p.first_paid_at,
        coalesce(r.amount_refunded, 0)::decimal(18, 2) as amount_refunded,
        coalesce(r.refund_count, 0) as refund_count,
        r.first_refunded_at,
        s.shipped_at,
        -- exact (microsecond) duration: rounding happens only where a mart's contract says
        date_diff('microsecond', o.ordered_at, s.shipped_at) / 3600e6 as hours_to_ship
    from orders as o
    left join paid as p on p.order_id = o.order_id
    left join refunded as r on r.order_id = o.order_id
    left join shipped as s on s.order_id = o.order_id
)

select * from final
