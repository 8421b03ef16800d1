-- grain: one row per ad per stat_date
-- `raw_*` arrives deduplicated by its source contract's key and winner rule (sources.yml)
with source as (
    select * from raw_mkt_ad_stats
),

final as (
    select
        stat_date,
        ad_id,
        campaign_id,
        impressions,
        clicks,
        spend,
        upper(currency) as currency,
        conversions,
        extracted_at
    from source
)

select * from final
