"""Marketing marts (`mkt_*`): each is `<name>.sql` + `<name>.yml` in this folder."""

from pathlib import Path

from marts_project.marts.common import build_mart

SQL = Path(__file__).parent

marketing_marts = [
    build_mart(SQL, "mkt_campaign_performance_fact"),
    build_mart(SQL, "mkt_channel_dim"),
    build_mart(SQL, "mkt_attribution_funnel_agg"),
    build_mart(SQL, "mkt_active_campaigns_v"),
]
