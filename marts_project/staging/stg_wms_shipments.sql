-- grain: one row per shipment, dated by the order date of the order it ships
-- `raw_*` arrives deduplicated by its source contract's key and winner rule (sources.yml)
with source as (
    select * from raw_wms_shipments
),

final as (
    select
        shipment_id,
        order_id,
        order_date,
        upper(warehouse_id) as warehouse_id,
        shipped_at,
        lower(carrier) as carrier
    from source
)

select * from final
