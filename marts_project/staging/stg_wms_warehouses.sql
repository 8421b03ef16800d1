-- grain: one row per warehouse per snapshot_date
with source as (
    select * from raw_wms_warehouses
),

deduplicated as (
    select
        *,
        row_number() over (
            partition by warehouse_id, snapshot_date order by _source_line desc
        ) as _rank
    from source
),

final as (
    select
        snapshot_date,
        upper(warehouse_id) as warehouse_id,
        warehouse_name,
        lower(region) as region,
        sla_hours,
        capacity_units
    from deduplicated
    where _rank = 1
)

select * from final
