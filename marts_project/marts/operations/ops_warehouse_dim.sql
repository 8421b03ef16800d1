-- grain: one row per warehouse with its attributes from the latest master-data snapshot
with warehouses as (
    select * from stg_wms_warehouses
),

final as (
    select
        warehouse_id,
        arg_max(warehouse_name, snapshot_date) as warehouse_name,
        arg_max(region, snapshot_date) as region,
        arg_max(sla_hours, snapshot_date)::integer as sla_hours,
        arg_max(capacity_units, snapshot_date)::bigint as capacity_units,
        min(snapshot_date) as first_seen_date,
        max(snapshot_date) as as_of_date,
        $refreshed_at::timestamptz as _last_refreshed_at
    from warehouses
    group by warehouse_id
)

select * from final
