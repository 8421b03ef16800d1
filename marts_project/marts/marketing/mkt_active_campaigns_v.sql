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

final as (
    select
        recent.campaign_id,
        arg_max(recent.campaign_name, recent.stat_date) as campaign_name,
        recent.channel,
        any_value(channels.channel_owner) as channel_owner,
        max(recent.stat_date) as last_active_date,
        sum(recent.spend)::decimal(18, 2) as spend_7d,
        sum(recent.leads)::bigint as leads_7d,
        sum(recent.mqls)::bigint as mqls_7d,
        round(sum(recent.spend) / nullif(sum(recent.leads), 0), 4)::double as cost_per_lead_7d
    from recent
    left join channels on channels.channel = recent.channel
    group by recent.campaign_id, recent.channel
    having sum(recent.spend) > 0
)

select * from final
