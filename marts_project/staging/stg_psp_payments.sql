-- grain: one row per payment, dated by the order date of the order it pays
with source as (
    select * from raw_psp_payments
),

deduplicated as (
    select
        *,
        row_number() over (partition by payment_id order by _source_line desc) as _rank
    from source
),

final as (
    select
        payment_id,
        order_id,
        order_date,
        paid_at,
        amount,
        lower(method) as method
    from deduplicated
    where _rank = 1
)

select * from final
