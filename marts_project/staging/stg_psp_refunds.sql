-- grain: one row per refund, dated by the order date of the order it refunds
with source as (
    select * from raw_psp_refunds
),

deduplicated as (
    select
        *,
        row_number() over (partition by refund_id order by _source_line desc) as _rank
    from source
),

final as (
    select
        refund_id,
        order_id,
        order_date,
        refunded_at,
        amount,
        lower(reason) as reason
    from deduplicated
    where _rank = 1
)

select * from final
