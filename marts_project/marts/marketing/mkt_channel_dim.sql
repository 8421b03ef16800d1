-- grain: one row per channel per version of its attributes (slowly changing, type 2):
-- valid from valid_from (inclusive) to valid_to (exclusive; null while current)
with campaigns as (
    select * from stg_mkt_campaigns
),

channel_days as (
    select
        channel,
        snapshot_date,
        min(platform) as platform,
        min(channel_owner) as channel_owner,
        min(cost_model) as cost_model
    from campaigns
    group by channel, snapshot_date
),

flagged as (
    select
        *,
        case
            when (platform, channel_owner, cost_model) is distinct from lag(
                (platform, channel_owner, cost_model)
            ) over (partition by channel order by snapshot_date) then 1
            else 0
        end as _starts_version
    from channel_days
),

versioned as (
    select
        *,
        sum(_starts_version) over (partition by channel order by snapshot_date) as _version
    from flagged
),

versions as (
    select
        channel,
        _version,
        min(platform) as platform,
        min(channel_owner) as channel_owner,
        min(cost_model) as cost_model,
        min(snapshot_date) as valid_from
    from versioned
    group by channel, _version
),

final as (
    select
        channel || '#' || _version::varchar as channel_version_key,
        channel,
        _version::integer as channel_version,
        platform,
        channel_owner,
        cost_model,
        valid_from,
        lead(valid_from) over (partition by channel order by _version) as valid_to,
        lead(valid_from) over (partition by channel order by _version) is null as is_current,
        $refreshed_at::timestamptz as _last_refreshed_at
    from versions
)

select * from final
