-- grain: one row per month: net revenue minus marketing cost, both from the shared layer
-- (the marketing cost is the same spend mkt_campaign_performance_fact reports)
with orders as (
    select * from int_orders_enriched
),

campaign_daily as (
    select * from int_mkt_campaign_daily
),

revenue as (
    select
        date_trunc('month', order_date)::date as month_start,
        count(*) as orders,
        count(distinct order_date) as days_included,
        sum(gross_amount) as gross_revenue,
        sum(amount_refunded) as refunds
    from orders
    group by all
),

marketing as (
    select
        date_trunc('month', stat_date)::date as month_start,
        sum(spend) as marketing_cost
    from campaign_daily
    group by all
),

final as (
    select
        coalesce(revenue.month_start, marketing.month_start) as month_start,
        coalesce(revenue.days_included, 0)::integer as days_included,
        coalesce(revenue.orders, 0)::bigint as orders,
        coalesce(revenue.gross_revenue, 0)::decimal(18, 2) as gross_revenue,
        coalesce(revenue.refunds, 0)::decimal(18, 2) as refunds,
        coalesce(revenue.gross_revenue - revenue.refunds, 0)::decimal(18, 2) as net_revenue,
        coalesce(marketing.marketing_cost, 0)::decimal(18, 2) as marketing_cost,
        (
            coalesce(revenue.gross_revenue - revenue.refunds, 0)
            - coalesce(marketing.marketing_cost, 0)
        )::decimal(18, 2) as contribution,
        round(
            marketing.marketing_cost / nullif(revenue.gross_revenue - revenue.refunds, 0), 6
        )::double as marketing_cost_ratio,
        $refreshed_at::timestamptz as _last_refreshed_at
    from revenue
    full outer join marketing on marketing.month_start = revenue.month_start
)

select * from final
