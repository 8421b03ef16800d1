"""What every mart asset shares: contract-derived definition and contract-enforced output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import AssetIn

from marts_project.contracts import Contract, load_contract
from marts_project.transform import daily_table


def contract_for(sql_dir: Path, name: str) -> Contract:
    return load_contract(sql_dir / f"{name}.yml")


def daily_mart(contract: Contract, inputs: dict[str, str], **kwargs: Any):
    """`@asset` for a day-partitioned mart, its docs and column schema taken from `contract`.

    `inputs` maps parameter names to the asset key prefix (layer) they come from.
    """
    return daily_table(
        contract.domain,
        contract.partition_column,
        name=contract.name,
        description=contract.description,
        owners=[contract.owner],
        tags={"domain": contract.domain, "layer": "mart"},
        metadata={
            "dagster/column_schema": contract.column_schema(),
            "contract/grain": contract.grain,
            "contract/unique_key": ", ".join(contract.unique_key),
            "contract/freshness_sla_hours": contract.freshness_sla_hours,
        },
        ins={name: AssetIn(key_prefix=prefix) for name, prefix in inputs.items()},
        **kwargs,
    )
