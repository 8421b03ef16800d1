-- grain: one row per order; e-mail tokenized
-- `raw_*` arrives deduplicated by its source contract's key and winner rule (sources.yml)
with source as (
    select * from raw_shop_orders
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
    from source
)

select * from final
