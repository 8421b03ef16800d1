-- grain: one row per order_date per warehouse: share of orders shipped within the warehouse's
-- SLA in force on the order date
with orders as (
    select * from int_orders_enriched
),

warehouses as (
    select * from stg_wms_warehouses
),

judged as (
    select
        orders.*,
        warehouses.sla_hours,
        -- within SLA: shipped at or before ordered_at + sla_hours, on exact timestamps
        orders.shipped_at <= orders.ordered_at + to_hours(warehouses.sla_hours) as within_sla
    from orders
    left join warehouses
        on warehouses.warehouse_id = orders.warehouse_id
        and warehouses.snapshot_date = orders.order_date
),

final as (
    select
        order_date,
        warehouse_id,
        any_value(sla_hours)::integer as sla_hours,
        count(*)::bigint as orders,
        count(shipped_at)::bigint as shipped_orders,
        count(*) filter (where within_sla)::bigint as shipped_within_sla,
        round(count(*) filter (where within_sla) / count(*), 6)::double
            as share_shipped_within_sla,
        round(avg(hours_to_ship), 2)::double as avg_hours_to_ship,
        -- the refresh's clock (UTC): the day closed at order_date + 1 at 00:00 UTC
        (
            (order_date + 1)::timestamp at time zone 'UTC'
            + to_hours(coalesce(any_value(sla_hours), 0))
            <= $refreshed_at::timestamptz
        ) as sla_window_closed,
        $refreshed_at::timestamptz as _last_refreshed_at
    from judged
    group by order_date, warehouse_id
)

select * from final
