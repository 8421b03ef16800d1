-- grain: one row per warehouse per SKU per snapshot_date
-- `raw_*` arrives deduplicated by its source contract's key and winner rule (sources.yml)
with source as (
    select * from raw_wms_inventory
),

final as (
    select
        snapshot_date,
        upper(warehouse_id) as warehouse_id,
        upper(sku) as sku,
        on_hand,
        reserved,
        reorder_point
    from source
)

select * from final
