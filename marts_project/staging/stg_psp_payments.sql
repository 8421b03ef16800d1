-- grain: one row per payment, dated by the order date of the order it pays
-- `raw_*` arrives deduplicated by its source contract's key and winner rule (sources.yml)
with source as (
    select * from raw_psp_payments
),

final as (
    select
        payment_id,
        order_id,
        order_date,
        paid_at,
        amount,
        lower(method) as method
    from source
)

select * from final
