-- grain: one row per ad per stat_date; the latest export of a day wins (restatements)
with source as (
    select * from raw_mkt_ad_stats
),

ranked as (
    select
        *,
        row_number() over (
            partition by ad_id, stat_date
            order by extracted_at desc, _source_line desc
        ) as _rank
    from source
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
    from ranked
    where _rank = 1
)

select * from final
