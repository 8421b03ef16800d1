-- grain: one row per campaign per snapshot_date (the catalog as it was that day)
-- `raw_*` arrives deduplicated by its source contract's key and winner rule (sources.yml)
with source as (
    select * from raw_mkt_campaigns
),

final as (
    select
        snapshot_date,
        campaign_id,
        campaign_name,
        lower(channel) as channel,
        lower(platform) as platform,
        lower(status) as status,
        daily_budget,
        lower(channel_owner) as channel_owner,
        lower(cost_model) as cost_model
    from source
)

select * from final
