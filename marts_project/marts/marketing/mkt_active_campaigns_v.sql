-- grain: one row per campaign that spent in the 7 days up to the latest published day
with performance as (
    select * from mkt_campaign_performance_fact
),

channels as (
    select * from mkt_channel_dim where is_current
),

latest as (
    select max(stat_date) as latest_day from performance
),

recent as (
    select performance.*
    from performance, latest
    where performance.stat_date > latest.latest_day - 7
),

campaigns as (
    -- one row per campaign: its name and channel on the latest day the catalog knew it
    -- ('unknown' only when it knew it on none of the 7 days)
    select
        campaign_id,
        coalesce(
            arg_max(campaign_name, stat_date) filter (where campaign_name <> 'unknown'),
            'unknown'
        ) as campaign_name,
        coalesce(
            arg_max(channel, stat_date) filter (where channel <> 'unknown'), 'unknown'
        ) as channel,
        max(stat_date) filter (where spend > 0) as last_active_date,
        sum(spend)::decimal(18, 2) as spend_7d,
        sum(leads)::bigint as leads_7d,
        sum(mqls)::bigint as mqls_7d,
        round(sum(spend) / nullif(sum(leads), 0), 4)::double as cost_per_lead_7d
    from recent
    group by campaign_id
    having sum(spend) > 0
),

final as (
    select
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.channel,
        channels.channel_owner,
        campaigns.last_active_date,
        campaigns.spend_7d,
        campaigns.leads_7d,
        campaigns.mqls_7d,
        campaigns.cost_per_lead_7d
    from campaigns
    left join channels on channels.channel = campaigns.channel
)

select * from final
