"""Operations marts (`ops_*`): each is `<name>.sql` + `<name>.yml` in this folder."""

from pathlib import Path

from marts_project.marts.common import build_mart

SQL = Path(__file__).parent

operations_marts = [
    build_mart(SQL, "ops_orders_fact"),
    build_mart(SQL, "ops_fulfillment_sla_fact"),
    build_mart(SQL, "ops_inventory_position_fact"),
    build_mart(SQL, "ops_warehouse_dim"),
]
