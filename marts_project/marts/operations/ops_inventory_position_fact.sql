-- grain: one row per warehouse per SKU per snapshot_date (end-of-day stock position)
with inventory as (
    select * from stg_wms_inventory
),

final as (
    select
        snapshot_date,
        warehouse_id,
        sku,
        on_hand,
        reserved,
        (on_hand - reserved)::integer as available,
        reorder_point,
        coalesce(on_hand - reserved < reorder_point, false) as below_reorder_point,
        $refreshed_at::timestamptz as _last_refreshed_at
    from inventory
)

select * from final
