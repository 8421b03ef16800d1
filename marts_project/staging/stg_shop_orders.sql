-- grain: one row per order (the last line of a re-exported order wins); e-mail tokenized
with source as (
    select * from raw_shop_orders
),

deduplicated as (
    select
        *,
        row_number() over (partition by order_id order by _source_line desc) as _rank
    from source
),

final as (
    select
        order_id,
        order_date,
        ordered_at,
        customer_id,
        case
            when customer_email is not null
                then sha256($pii_key || lower(trim(customer_email)))
        end as customer_email_token,
        lower(sales_channel) as sales_channel,
        upper(warehouse_id) as warehouse_id,
        items,
        gross_amount,
        upper(currency) as currency
    from deduplicated
    where _rank = 1
)

select * from final
