"""The raw layer's check: a partition that quarantined too much blocks everything downstream.

Judged by the raw asset's own write from the counts it has just made (no second read of the
table and the quarantine), and reported as that materialization's check result."""

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey

from marts_project.raw.sources import SourceSpec


def quarantine_share_spec(spec: SourceSpec, key: AssetKey) -> AssetCheckSpec:
    """The blocking check on the share of a source's landing rows that were quarantined."""
    return AssetCheckSpec(
        "quarantine_share",
        asset=key,
        blocking=True,
        description=f"At most {spec.max_quarantine_share:.0%} of a day's landing rows are "
        "quarantined; above that the source is broken and nothing downstream runs on it.",
    )


def quarantine_share_result(spec: SourceSpec, published: int, rejected: int) -> AssetCheckResult:
    """The check's result for a write that published `published` rows and quarantined
    `rejected` (of the days it wrote)."""
    share = rejected / max(1, rejected + published)
    return AssetCheckResult(
        check_name="quarantine_share",
        passed=share <= spec.max_quarantine_share,
        severity=AssetCheckSeverity.ERROR,
        description=None
        if share <= spec.max_quarantine_share
        else f"{share:.1%} of the landing rows were quarantined "
        f"(at most {spec.max_quarantine_share:.0%})",
        metadata={
            "rows_published": published,
            "rows_quarantined": rejected,
            "quarantine_share": round(share, 4),
            "max_quarantine_share": spec.max_quarantine_share,
        },
    )


def header_spec(key: AssetKey) -> AssetCheckSpec:
    """The warning on a landing file that lacks optional columns of its contract."""
    return AssetCheckSpec(
        "header_matches_contract",
        asset=key,
        blocking=False,
        description="Every landing file read has every column of its source contract. An "
        "optional column a file lacks loads as null for all its rows (a source that renamed "
        "it, for example): the partition is written, and this warns.",
    )


def header_result(missing_optional: dict[str, list[str]], ignored: str) -> AssetCheckResult:
    """The check's result: which files lacked which optional columns, and the columns outside
    the contract the files had (`ignored`, "none" or a list: a renamed column shows in both)."""
    lacking = "; ".join(f"{f}: {', '.join(cols)}" for f, cols in sorted(missing_optional.items()))
    return AssetCheckResult(
        check_name="header_matches_contract",
        passed=not missing_optional,
        severity=AssetCheckSeverity.WARN,
        description=None
        if not missing_optional
        else f"optional columns missing, loaded as null: {lacking}"
        + (f" (columns not in the contract: {ignored})" if ignored != "none" else ""),
        metadata={
            "files_missing_optional_columns": len(missing_optional),
            "columns_not_in_contract": ignored,
        },
    )
