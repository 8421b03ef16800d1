-- grain: one row per shipment, dated by the order date of the order it ships
with source as (
    select * from raw_wms_shipments
),

deduplicated as (
    select
        *,
        row_number() over (partition by shipment_id order by _source_line desc) as _rank
    from source
),

final as (
    select
        shipment_id,
        order_id,
        order_date,
        upper(warehouse_id) as warehouse_id,
        shipped_at,
        lower(carrier) as carrier
    from deduplicated
    where _rank = 1
)

select * from final
