"""Marts per domain: one asset, one `.sql` and one contract `.yml` per mart table."""

from marts_project.marts.common import Mart
from marts_project.marts.finance.assets import finance_marts
from marts_project.marts.marketing.assets import marketing_marts
from marts_project.marts.operations.assets import operations_marts

ALL_MARTS: list[Mart] = [*marketing_marts, *finance_marts, *operations_marts]


def contract_of(name: str):
    """The contract of mart `name`."""
    for mart in ALL_MARTS:
        if mart.contract.name == name:
            return mart.contract
    raise KeyError(f"no mart named {name!r}")
