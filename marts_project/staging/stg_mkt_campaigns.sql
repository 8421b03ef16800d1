-- grain: one row per campaign per snapshot_date (the catalog as it was that day)
with source as (
    select * from raw_mkt_campaigns
),

deduplicated as (
    select
        *,
        row_number() over (
            partition by campaign_id, snapshot_date order by _source_line desc
        ) as _rank
    from source
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
    from deduplicated
    where _rank = 1
)

select * from final
