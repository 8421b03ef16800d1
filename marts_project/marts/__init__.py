"""Marts per domain: one asset, one `.sql` and one contract `.yml` per mart table."""

from marts_project.core.lineage import sql_inputs
from marts_project.governance.access import ungranted_reads
from marts_project.marts.common import Mart
from marts_project.marts.finance.assets import finance_marts
from marts_project.marts.marketing.assets import marketing_marts
from marts_project.marts.operations.assets import operations_marts

ALL_MARTS: list[Mart] = [*marketing_marts, *finance_marts, *operations_marts]


class UngrantedReadError(ValueError):
    """A mart reads another domain's mart that was not granted to it (or a regulated one)."""


def reads_of(mart: Mart) -> set[str]:
    """Every table a mart's SQL and its reconciliations read."""
    sqls = [mart.sql_file.read_text(), *(r.sql for r in mart.contract.reconciliations)]
    return {table for sql in sqls for table in sql_inputs(sql)}


if problems := ungranted_reads(
    [m.contract for m in ALL_MARTS], {m.contract.name: reads_of(m) for m in ALL_MARTS}
):
    raise UngrantedReadError("; ".join(problems))


def contract_of(name: str):
    """The contract of mart `name`."""
    for mart in ALL_MARTS:
        if mart.contract.name == name:
            return mart.contract
    raise KeyError(f"no mart named {name!r}")
