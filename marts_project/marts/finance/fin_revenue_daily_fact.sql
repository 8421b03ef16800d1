-- grain: one row per order_date per sales_channel; refunds are attributed to the order's date
-- (cohort view), so late refunds restate past days
with orders as (
    select * from int_orders_enriched
),

final as (
    select
        order_date,
        sales_channel,
        count(*)::bigint as orders,
        sum(items)::bigint as items,
        sum(gross_amount)::decimal(18, 2) as gross_revenue,
        sum(amount_refunded)::decimal(18, 2) as refunds,
        (sum(gross_amount) - sum(amount_refunded))::decimal(18, 2) as net_revenue,
        count(*) filter (where refund_count > 0)::bigint as refunded_orders,
        $refreshed_at::timestamptz as _last_refreshed_at
    from orders
    group by order_date, sales_channel
)

select * from final
