-- grain: one row per campaign per day (impression -> click -> lead -> MQL, spend, unit costs)
with campaign_daily as (
    select * from int_mkt_campaign_daily
),

final as (
    select
        stat_date,
        campaign_id,
        coalesce(campaign_name, 'unknown') as campaign_name,
        coalesce(channel, 'unknown') as channel,
        impressions,
        clicks,
        platform_conversions,
        leads,
        mqls,
        spend,
        round(clicks / nullif(impressions, 0), 6)::double as click_through_rate,
        round(spend / nullif(leads, 0), 4)::double as cost_per_lead,
        round(spend / nullif(mqls, 0), 4)::double as cost_per_mql,
        $refreshed_at::timestamptz as _last_refreshed_at
    from campaign_daily
)

select * from final
