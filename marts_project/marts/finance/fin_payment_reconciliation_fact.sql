-- grain: one row per order_date: what was ordered against what the payment provider captured
with orders as (
    select * from int_orders_enriched
),

final as (
    select
        order_date,
        count(*)::bigint as orders,
        count(*) filter (where amount_paid >= gross_amount)::bigint as paid_orders,
        count(*) filter (where amount_paid > 0 and amount_paid < gross_amount)::bigint
            as underpaid_orders,
        count(*) filter (where amount_paid = 0)::bigint as unpaid_orders,
        sum(gross_amount)::decimal(18, 2) as amount_ordered,
        sum(amount_paid)::decimal(18, 2) as amount_captured,
        (sum(gross_amount) - sum(amount_paid))::decimal(18, 2) as payment_gap,
        $refreshed_at::timestamptz as _last_refreshed_at
    from orders
    group by order_date
)

select * from final
