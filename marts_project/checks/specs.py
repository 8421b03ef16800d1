"""How a contract's checks appear in Dagster: their specs, descriptions and results.

A mart's data checks are judged once, by the audit pass of its own write (write-audit-publish),
and reported as that materialization's check results; only the checks that need the clock or
other marts (recency, partition freshness, reconciliations) run after the mart, in one check
step per mart (`observability/contract_checks.py`).
"""

from collections.abc import Sequence

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue

from marts_project.checks.audits import Audit
from marts_project.checks.registry import CHECKS, WRITE_AUDITS
from marts_project.core.contracts import CheckPolicy, Contract


def check_spec(
    name: str,
    key: AssetKey,
    policy: CheckPolicy,
    description: str,
    additional_deps: Sequence[AssetKey] = (),
) -> AssetCheckSpec:
    """A contract's check as Dagster shows it: blocking and severity from the contract."""
    return AssetCheckSpec(
        name,
        asset=key,
        blocking=policy.blocking,
        description=description,
        additional_deps=additional_deps,
        metadata={"contract/severity": policy.severity},
    )


def write_audit_specs(contract: Contract, key: AssetKey) -> list[AssetCheckSpec]:
    """The checks of `contract` that its mart's write reports (one spec per listed audit)."""
    return [
        check_spec(name, key, policy, CHECKS[name].description)
        for name, policy in contract.checks
        if name in WRITE_AUDITS
    ]


def check_result(
    audit: Audit, policy: CheckPolicy, asset_key: AssetKey | None = None
) -> AssetCheckResult:
    """An audit as Dagster shows it, with the severity the contract gives it."""
    return AssetCheckResult(
        asset_key=asset_key,
        check_name=audit.name,
        passed=audit.passed,
        severity=AssetCheckSeverity.ERROR
        if policy.severity == "error"
        else AssetCheckSeverity.WARN,
        description=None if audit.passed else audit.message,
        metadata={**audit.metadata, "result": MetadataValue.text(audit.message)},
    )
