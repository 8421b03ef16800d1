-- grain: one row per campaign per day with any ad activity or lead; the shared definition of
-- campaign cost (spend) that marketing and finance marts both use
with ad_stats as (
    select * from stg_mkt_ad_stats
),

leads as (
    select * from stg_mkt_leads
),

campaigns as (
    select * from stg_mkt_campaigns
),

ads_by_campaign as (
    select
        campaign_id,
        stat_date,
        sum(impressions)::bigint as impressions,
        sum(clicks)::bigint as clicks,
        sum(spend) as spend,
        sum(conversions)::bigint as platform_conversions
    from ad_stats
    group by campaign_id, stat_date
),

leads_by_campaign as (
    select
        campaign_id,
        lead_date as stat_date,
        count(*) as leads,
        count(*) filter (where is_mql) as mqls
    from leads
    where campaign_id is not null
    group by campaign_id, lead_date
),

final as (
    select
        coalesce(a.stat_date, l.stat_date) as stat_date,
        coalesce(a.campaign_id, l.campaign_id) as campaign_id,
        c.campaign_name,
        c.channel,
        c.platform,
        coalesce(a.impressions, 0) as impressions,
        coalesce(a.clicks, 0) as clicks,
        coalesce(a.spend, 0)::decimal(18, 2) as spend,
        coalesce(a.platform_conversions, 0) as platform_conversions,
        coalesce(l.leads, 0) as leads,
        coalesce(l.mqls, 0) as mqls
    from ads_by_campaign as a
    full outer join leads_by_campaign as l
        on a.campaign_id = l.campaign_id and a.stat_date = l.stat_date
    left join campaigns as c
        on c.campaign_id = coalesce(a.campaign_id, l.campaign_id)
        and c.snapshot_date = coalesce(a.stat_date, l.stat_date)
)

select * from final
