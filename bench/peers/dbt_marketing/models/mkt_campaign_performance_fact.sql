{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='stat_date') }}

with ads as (
    select stat_date, campaign_id, sum(impressions) as impressions, sum(clicks) as clicks,
           sum(spend) as spend, sum(conversions) as conversions
    from read_csv({{ landing_files('mkt_ad_stats') }}, header = true, columns = {
        'stat_date': 'date', 'ad_id': 'varchar', 'campaign_id': 'varchar',
        'impressions': 'bigint', 'clicks': 'bigint', 'spend': 'decimal(18,2)',
        'currency': 'varchar', 'conversions': 'bigint', 'extracted_at': 'varchar'})
    group by all
), leads as (
    select created_at::date as stat_date, campaign_id, count(*) as leads,
           count(*) filter (where is_mql) as mqls
    from read_csv({{ landing_files('mkt_crm_leads') }}, header = true, columns = {
        'lead_id': 'varchar', 'created_at': 'timestamptz', 'email': 'varchar',
        'full_name': 'varchar', 'campaign_id': 'varchar', 'is_mql': 'boolean'})
    where campaign_id is not null
    group by all
), campaigns as (
    select snapshot_date, campaign_id, channel
    from read_csv({{ landing_files('mkt_campaigns') }}, header = true, columns = {
        'snapshot_date': 'date', 'campaign_id': 'varchar', 'campaign_name': 'varchar',
        'channel': 'varchar', 'platform': 'varchar', 'status': 'varchar',
        'daily_budget': 'decimal(18,2)', 'channel_owner': 'varchar', 'cost_model': 'varchar'})
)
select coalesce(a.stat_date, l.stat_date) as stat_date,
       coalesce(a.campaign_id, l.campaign_id) as campaign_id,
       coalesce(c.channel, 'unknown') as channel,
       coalesce(impressions, 0) as impressions, coalesce(clicks, 0) as clicks,
       coalesce(conversions, 0) as platform_conversions,
       coalesce(leads, 0) as leads, coalesce(mqls, 0) as mqls,
       coalesce(spend, 0)::decimal(18,2) as spend
from ads a
full join leads l on a.stat_date = l.stat_date and a.campaign_id = l.campaign_id
left join campaigns c
  on c.campaign_id = coalesce(a.campaign_id, l.campaign_id)
 and c.snapshot_date = coalesce(a.stat_date, l.stat_date)
where coalesce(a.stat_date, l.stat_date) between '{{ var("start") }}' and '{{ var("end") }}'
