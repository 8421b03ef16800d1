"""The check-results table people read in CI and in the terminal."""

from marts_project.execution.runs import CheckRow


def check_table(rows: list[CheckRow], width: int = 70) -> str:
    """Fixed-width table of check results, failures first."""
    ordered = sorted(rows, key=lambda r: (r.passed, r.severity != "ERROR", r.asset, r.check))
    asset_w = max([len(r.asset) for r in rows] + [5])
    check_w = max([len(r.check) for r in rows] + [5])
    lines = [f"{'asset':<{asset_w}}  {'check':<{check_w}}  severity  result  detail"]
    lines.append("-" * len(lines[0]))
    for r in ordered:
        result = "PASS" if r.passed else "FAIL"
        detail = r.detail if len(r.detail) <= width else r.detail[: width - 3] + "..."
        lines.append(
            f"{r.asset:<{asset_w}}  {r.check:<{check_w}}  {r.severity:<8}  {result:<6}  "
            f"{'' if r.passed else detail}"
        )
    failed = [r for r in rows if not r.passed and r.severity == "ERROR"]
    warned = [r for r in rows if not r.passed and r.severity != "ERROR"]
    lines.append(
        f"{len(rows)} checks: {len(rows) - len(failed) - len(warned)} passed, "
        f"{len(failed)} failed (ERROR), {len(warned)} warned"
    )
    return "\n".join(lines)
