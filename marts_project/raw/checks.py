"""The raw layer's check: a partition that quarantined too much blocks everything downstream.

Judged by the raw asset's own write from the counts it has just made (no second read of the
table and the quarantine), file by file: a day is blocked when a landing file it read (its own,
or a later day's with its late rows) is over the share, whichever run writes it. Reported as
that materialization's check result."""

from collections.abc import Mapping

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue

from marts_project.raw.sources import SourceSpec


def quarantine_share_spec(spec: SourceSpec, key: AssetKey) -> AssetCheckSpec:
    """The blocking check on the share of a source's landing rows that were quarantined."""
    return AssetCheckSpec(
        "quarantine_share",
        asset=key,
        blocking=True,
        description=f"At most {spec.max_quarantine_share:.0%} of a landing file's rows are "
        "quarantined; above that the source is broken and nothing downstream runs on the days "
        "that read the file.",
    )


def files_over_share(spec: SourceSpec, files: Mapping[str, tuple[int, int]]) -> dict[str, float]:
    """Of the landing files read (file -> its rows quarantined, its rows), those whose
    quarantined share is above the source's maximum, with that share."""
    shares = {f: bad / max(1, rows) for f, (bad, rows) in files.items()}
    return {f: share for f, share in sorted(shares.items()) if share > spec.max_quarantine_share}


def quarantine_share_result(
    spec: SourceSpec,
    files: Mapping[str, tuple[int, int]],
    blocked: list[str],
    published: int,
    rejected: int,
) -> AssetCheckResult:
    """The check's result for a write that read `files` (file -> its rows quarantined, its
    rows), published `published` rows and quarantined `rejected` of its own days; `blocked` are
    the days written that read a file over the share. Each file is judged on its own (a bad
    file is not averaged away by the good ones a range run reads with it), so the verdict on a
    day is the same whichever run writes it."""
    over = files_over_share(spec, files)
    shares = {f: bad / max(1, rows) for f, (bad, rows) in files.items()}
    worst = max(shares, key=lambda f: (shares[f], f)) if shares else None
    found = "; ".join(
        f"{share:.1%} of the rows of {f} were quarantined" for f, share in over.items()
    )
    return AssetCheckResult(
        check_name="quarantine_share",
        passed=not blocked,
        severity=AssetCheckSeverity.ERROR,
        description=None
        if not blocked
        else f"{found} (at most {spec.max_quarantine_share:.0%}): blocks "
        + ", ".join(sorted(blocked)),
        metadata={
            "rows_published": published,
            "rows_quarantined": rejected,
            "quarantine_share": round(shares[worst], 4) if worst else 0.0,  # the worst file's
            "worst_file": worst or "none",
            "files_over": MetadataValue.json(list(over)),
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
