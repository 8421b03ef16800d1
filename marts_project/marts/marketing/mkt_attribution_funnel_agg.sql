-- grain: one row per ISO week (Monday start) per channel: impression -> click -> lead -> MQL
with campaign_daily as (
    select * from int_mkt_campaign_daily
),

weekly as (
    select
        date_trunc('week', stat_date)::date as week_start,
        coalesce(channel, 'unknown') as channel,
        sum(impressions)::bigint as impressions,
        sum(clicks)::bigint as clicks,
        sum(leads)::bigint as leads,
        sum(mqls)::bigint as mqls,
        sum(spend)::decimal(18, 2) as spend,
        count(distinct stat_date)::integer as days_included
    from campaign_daily
    group by all
),

final as (
    select
        week_start,
        channel,
        days_included,
        impressions,
        clicks,
        leads,
        mqls,
        spend,
        round(clicks / nullif(impressions, 0), 6)::double as click_through_rate,
        round(leads / nullif(clicks, 0), 6)::double as click_to_lead_rate,
        round(mqls / nullif(leads, 0), 6)::double as lead_to_mql_rate,
        $refreshed_at::timestamptz as _last_refreshed_at
    from weekly
)

select * from final
