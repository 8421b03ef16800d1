-- grain: one row per order_date per warehouse: share of orders shipped within the warehouse's
-- SLA in force on the order date
with orders as (
    select * from int_orders_enriched
),

warehouses as (
    select * from stg_wms_warehouses
),

final as (
    select
        orders.order_date,
        orders.warehouse_id,
        any_value(warehouses.sla_hours)::integer as sla_hours,
        count(*)::bigint as orders,
        count(orders.shipped_at)::bigint as shipped_orders,
        count(*) filter (where orders.hours_to_ship <= warehouses.sla_hours)::bigint
            as shipped_within_sla,
        round(
            count(*) filter (where orders.hours_to_ship <= warehouses.sla_hours) / count(*), 6
        )::double as share_shipped_within_sla,
        round(avg(orders.hours_to_ship), 2)::double as avg_hours_to_ship,
        (
            orders.order_date + 1 + to_hours(coalesce(any_value(warehouses.sla_hours), 0))
            <= $refreshed_at::timestamptz
        ) as sla_window_closed,
        $refreshed_at::timestamptz as _last_refreshed_at
    from orders
    left join warehouses
        on warehouses.warehouse_id = orders.warehouse_id
        and warehouses.snapshot_date = orders.order_date
    group by orders.order_date, orders.warehouse_id
)

select * from final
