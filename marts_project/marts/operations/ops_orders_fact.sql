-- grain: one row per order, with its fulfilment state as of the last refresh
with orders as (
    select * from int_orders_enriched
),

final as (
    select
        order_id,
        order_date,
        ordered_at,
        sales_channel,
        warehouse_id,
        items,
        gross_amount,
        amount_paid >= gross_amount as is_paid,
        shipped_at,
        round(hours_to_ship, 2)::double as hours_to_ship,
        case
            when refund_count > 0 then 'refunded'
            when shipped_at is not null then 'shipped'
            else 'awaiting_shipment'
        end as order_status,
        $refreshed_at::timestamptz as _last_refreshed_at
    from orders
)

select * from final
