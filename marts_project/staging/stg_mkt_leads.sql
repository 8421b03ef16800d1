-- grain: one row per CRM lead; e-mail tokenized (keyed SHA-256), name dropped: no PII leaves here
-- `raw_*` arrives deduplicated by its source contract's key and winner rule (sources.yml)
with source as (
    select * from raw_mkt_crm_leads
),

final as (
    select
        lead_id,
        lead_date,
        created_at,
        sha256($pii_key || lower(trim(email))) as email_token,
        nullif(campaign_id, '') as campaign_id,
        is_mql
    from source
)

select * from final
