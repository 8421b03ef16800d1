"""The freshness and cost page: one self-contained HTML file (and its JSON) showing each mart's
SLA, last refresh, per-partition freshness and the cost and rows of each refresh over time."""

import datetime as dt
import html
import json
from pathlib import Path

from dagster import DagsterInstance

from marts_project.freshness import partition_freshness
from marts_project.marts import ALL_MARTS
from marts_project.resources.landing import LandingZone
from marts_project.resources.serving import ServingDatabase

HISTORY = 60  # refreshes plotted per mart
COLORS = {
    "fresh": "#2e7d32",
    "stale": "#f9a825",
    "not_built": "#ef6c00",
    "overdue": "#c62828",
    "no_landing_data": "#9e9e9e",
}


def _number(metadata: dict, key: str) -> float:
    value = metadata.get(key)
    return float(getattr(value, "value", value) or 0)


def refresh_history(instance: DagsterInstance, mart) -> list[dict]:
    """Oldest first: when each materialization happened, its rows and what it cost."""
    records = instance.fetch_materializations(mart.asset.key, limit=HISTORY).records
    history = []
    for record in reversed(records):
        materialization = record.asset_materialization
        meta = materialization.metadata
        history.append(
            {
                "at": dt.datetime.fromtimestamp(record.timestamp, dt.UTC).isoformat(),
                "partition": materialization.partition,
                "rows": int(_number(meta, "dagster/row_count")),
                "seconds": round(
                    _number(meta, "transform_seconds") + _number(meta, "write_seconds"), 3
                ),
                "cpu_seconds": round(
                    _number(meta, "transform_cpu_seconds") + _number(meta, "write_cpu_seconds"), 3
                ),
                "bytes_written": int(_number(meta, "iceberg/bytes_added")),
            }
        )
    return history


def build_report(
    instance: DagsterInstance,
    serving: ServingDatabase,
    landing: LandingZone,
    now: dt.datetime,
) -> dict:
    """Everything the page shows, as JSON-ready data."""
    marts = []
    for mart in ALL_MARTS:
        history = refresh_history(instance, mart)
        partitions = (
            [p.as_json() for p in partition_freshness(mart, serving, landing, now)]
            if mart.asset.partitions_def
            else []
        )
        marts.append(
            {
                "name": mart.contract.name,
                "domain": mart.contract.domain,
                "owner": mart.contract.owner,
                "sla_hours": mart.contract.freshness_sla_hours,
                "last_refresh": history[-1]["at"] if history else None,
                "partitions": partitions,
                "refreshes": history,
            }
        )
    return {"generated_at": now.isoformat(), "marts": marts}


def _bars(values: list[float], color: str, title: str, unit: str) -> str:
    """An inline SVG bar chart (no scripts, no external files)."""
    width, height, pad = 360, 90, 4
    if not values:
        return f'<p class="empty">{html.escape(title)}: no refreshes yet</p>'
    top = max(values) or 1
    step = (width - 2 * pad) / len(values)
    bars = "".join(
        f'<rect x="{pad + i * step:.1f}" y="{height - pad - (v / top) * (height - 2 * pad):.1f}" '
        f'width="{max(step - 1, 1):.1f}" height="{(v / top) * (height - 2 * pad):.1f}" '
        f'fill="{color}"><title>{v:g} {unit}</title></rect>'
        for i, v in enumerate(values)
    )
    return (
        f"<figure><figcaption>{html.escape(title)} (max {top:g} {unit})</figcaption>"
        f'<svg role="img" aria-label="{html.escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">{bars}</svg></figure>'
    )


def render_html(report: dict) -> str:
    sections = []
    for mart in report["marts"]:
        cells = "".join(
            f'<td class="{p["status"]}" title="{p["day"]}: {p["status"]}">'
            f"{p['day'][5:]}<br>{p['status'].replace('_', ' ')}</td>"
            for p in mart["partitions"]
        )
        freshness = (
            f'<table class="partitions"><tr>{cells}</tr></table>'
            if cells
            else "<p>unpartitioned: freshness is its last refresh</p>"
        )
        refreshes = mart["refreshes"]
        sections.append(
            f'<section id="{mart["name"]}"><h2>{html.escape(mart["name"])}</h2>'
            f'<p class="meta">{html.escape(mart["domain"])} &middot; '
            f"{html.escape(mart['owner'])} &middot; SLA {mart['sla_hours']} h &middot; "
            f"last refresh {mart['last_refresh'] or 'never'}</p>"
            f'{freshness}<div class="charts">'
            + _bars([r["seconds"] for r in refreshes], "#1565c0", "seconds per refresh", "s")
            + _bars([r["cpu_seconds"] for r in refreshes], "#6a1b9a", "CPU per refresh", "s")
            + _bars([r["rows"] for r in refreshes], "#00838f", "rows per refresh", "rows")
            + "</div></section>"
        )
    legend = "".join(
        f'<span class="{status}">{status.replace("_", " ")}</span>' for status in COLORS
    )
    style = "".join(
        f"td.{s}, span.{s} {{ background: {c}; color: #fff; }}" for s, c in COLORS.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>marts: freshness and cost</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
section {{ border-top: 1px solid #ddd; padding: .5rem 0 1rem; }}
.meta {{ color: #555; }} table.partitions td {{ padding: .3rem .5rem; font-size: .8rem;
text-align: center; }} .charts {{ display: flex; gap: 1.5rem; flex-wrap: wrap; }}
figure {{ margin: 0; }} figcaption {{ font-size: .8rem; color: #555; }}
.legend span {{ padding: .2rem .5rem; margin-right: .3rem; font-size: .8rem; }}
{style}
</style></head><body>
<h1>Freshness and cost of the marts</h1>
<p>Generated {report["generated_at"]}. Each day of the SLA window is <em>fresh</em> when the
mart was refreshed after its landing files last changed.</p>
<p class="legend">{legend}</p>
{"".join(sections)}
</body></html>
"""


def write_report(report: dict, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    page, data = folder / "report.html", folder / "report.json"
    page.write_text(render_html(report))
    data.write_text(json.dumps(report, indent=2))
    return page, data
