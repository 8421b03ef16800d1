-- grain: one row per refund, dated by the order date of the order it refunds
-- `raw_*` arrives deduplicated by its source contract's key and winner rule (sources.yml)
with source as (
    select * from raw_psp_refunds
),

final as (
    select
        refund_id,
        order_id,
        order_date,
        refunded_at,
        amount,
        lower(reason) as reason
    from source
)

select * from final
