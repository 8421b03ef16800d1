"""Finance marts (`fin_*`): each is `<name>.sql` + `<name>.yml` in this folder."""

from pathlib import Path

from marts_project.marts.common import build_mart

SQL = Path(__file__).parent

finance_marts = [
    build_mart(SQL, "fin_revenue_daily_fact"),
    build_mart(SQL, "fin_payment_reconciliation_fact"),
    build_mart(SQL, "fin_pnl_monthly_agg"),
]
