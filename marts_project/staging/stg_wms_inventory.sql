-- grain: one row per warehouse per SKU per snapshot_date
with source as (
    select * from raw_wms_inventory
),

deduplicated as (
    select
        *,
        row_number() over (
            partition by warehouse_id, sku, snapshot_date order by _source_line desc
        ) as _rank
    from source
),

final as (
    select
        snapshot_date,
        upper(warehouse_id) as warehouse_id,
        upper(sku) as sku,
        on_hand,
        reserved,
        reorder_point
    from deduplicated
    where _rank = 1
)

select * from final
