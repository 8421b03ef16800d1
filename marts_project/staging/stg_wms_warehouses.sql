-- grain: one row per warehouse per snapshot_date
-- `raw_*` arrives deduplicated by its source contract's key and winner rule (sources.yml)
with source as (
    select * from raw_wms_warehouses
),

final as (
    select
        snapshot_date,
        upper(warehouse_id) as warehouse_id,
        warehouse_name,
        lower(region) as region,
        sla_hours,
        capacity_units
    from source
)

select * from final
