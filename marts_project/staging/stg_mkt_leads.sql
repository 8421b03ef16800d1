-- grain: one row per CRM lead; e-mail tokenized (keyed SHA-256), name dropped: no PII leaves here
with source as (
    select * from raw_mkt_crm_leads
),

deduplicated as (
    select
        *,
        row_number() over (partition by lead_id order by _source_line desc) as _rank
    from source
),

final as (
    select
        lead_id,
        lead_date,
        created_at,
        sha256($pii_key || lower(trim(email))) as email_token,
        nullif(campaign_id, '') as campaign_id,
        is_mql
    from deduplicated
    where _rank = 1
)

select * from final
