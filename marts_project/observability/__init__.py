"""What users see of the marts' health: freshness, SLOs, unrepaired failures, page, summary."""
