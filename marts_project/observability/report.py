"""The freshness and cost page: one self-contained HTML file (and its JSON) showing each mart's
SLA, last refresh, per-partition freshness, its SLIs against its SLOs with the budget left and
the incidents that spent it, and the cost and rows of each refresh over time."""

import datetime as dt
import json
import math
from pathlib import Path

import jinja2
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from marts_project.core.partitions import day_closes
from marts_project.marts import ALL_MARTS
from marts_project.observability.freshness import partition_freshness
from marts_project.observability.slo_history import mart_slo
from marts_project.resources.iceberg import IcebergWarehouse
from marts_project.resources.iceberg_io import table_identifier
from marts_project.resources.landing import LandingSnapshot, LandingZone
from marts_project.resources.serving import ServingDatabase

HISTORY = 60  # refreshes plotted per mart
COLORS = {
    "fresh": "#2e7d32",
    "stale": "#f9a825",
    "not_built": "#ef6c00",
    "overdue": "#c62828",
    "no_landing_data": "#9e9e9e",
    "failed": "#6a1b9a",
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
                "at": dt.datetime.fromtimestamp(record.timestamp, dt.UTC).isoformat(
                    timespec="seconds"
                ),
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


def first_builds(instance: DagsterInstance, key: AssetKey, days: list[str]) -> dict[str, str]:
    """When each of `days` was first materialized (ISO, UTC): its first serving."""
    first: dict[str, str] = {}
    for day in days:
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1, ascending=True
        ).records
        if records:
            at = dt.datetime.fromtimestamp(records[0].timestamp, dt.UTC)
            first[day] = at.isoformat(timespec="seconds")
    return first


def build_report(
    instance: DagsterInstance,
    serving: ServingDatabase,
    landing: LandingZone | LandingSnapshot,
    warehouse: IcebergWarehouse,
    now: dt.datetime,
    failed: dict[str, list[str]] | None = None,
    stale: set | None = None,
) -> dict:
    """Everything the page shows, as JSON-ready data; `failed`: the unrepaired failures
    (`failures.failed_partitions`), shown on the days they touch and listed on their own;
    `stale`: the out-of-date partitions (`planning.planner.stale_partitions`)."""
    marts = []
    for mart in ALL_MARTS:
        # a partitioned mart's went-live time tells a backfill from a late refresh
        needed = mart.contract.slo is not None or mart.asset.partitions_def is not None
        slo = mart_slo(mart, instance, warehouse, landing, now) if needed else None
        history = refresh_history(instance, mart)
        partitions = (
            [
                p.as_json()
                for p in partition_freshness(
                    mart,
                    serving,
                    landing,
                    now,
                    failed=failed,
                    stale=stale or set(),
                    built=warehouse.build_records(table_identifier(mart.asset.key)),
                )
            ]
            if mart.asset.partitions_def
            else []
        )
        first = first_builds(instance, mart.asset.key, [p["day"] for p in partitions])
        for p in partitions:
            p["first_built_at"] = first.get(p["day"])
        marts.append(
            {
                "name": mart.contract.name,
                "domain": mart.contract.domain,
                "owner": mart.contract.owner,
                "sla_hours": mart.contract.freshness_sla_hours,
                "last_refresh": history[-1]["at"] if history else None,
                "partitions": partitions,
                "refreshes": history,
                "went_live": slo.as_json()["went_live"] if slo else None,
                "slo": slo.as_json() if slo and mart.contract.slo else None,
            }
        )
    return {
        "generated_at": now.isoformat(timespec="seconds"),
        "marts": marts,
        "failed": failed or {},
    }


# Chart geometry (px): the plot area sits inside these margins, axes labelled outside it.
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 420, 150, 48, 10, 10, 22


def _nice(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^n at or above `value` (a readable axis top)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value)


def _fmt(value: float, unit: str) -> str:
    text = f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:.3g}"
    return f"{text} {unit}"


def time_chart(
    points: list[tuple[dt.datetime, float]],
    title: str,
    unit: str,
    color: str,
    threshold: tuple[float, str] | None = None,
    apart: list[tuple[dt.datetime, float]] | None = None,
) -> dict:
    """An SVG bar chart on a time axis: bars placed at their time, the y axis in `unit` from
    zero, an optional threshold line (the SLA), and points drawn `apart` as grey ticks on the
    axis (their value in their label, not on the scale). Geometry only; the template draws
    it."""
    chart = {"title": title, "color": color, "width": WIDTH, "height": HEIGHT, "bars": []}
    chart.update(left=LEFT, right=WIDTH - RIGHT, bottom=HEIGHT - BOTTOM, x_ticks=[], y_ticks=[])
    chart.update(threshold=None, ticks=[], tick_color=BACKFILLED)
    apart = apart or []
    if not points and not apart:
        return chart
    times = [t.timestamp() for t, _ in points + apart]
    first, last = min(times), max(times)
    span = (last - first) or 86400.0
    first, last = first - span * 0.04, last + span * 0.04  # bars at the ends stay inside
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _nice(max([v for _, v in points] + [threshold[0] if threshold else 0]))
    bar_w = max(1.0, min(14.0, plot_w / len(points + apart) - 1))

    def x_of(seconds: float) -> float:
        return LEFT + (seconds - first) / (last - first) * plot_w

    def y_of(value: float) -> float:
        return TOP + plot_h - value / top * plot_h

    for (at, value), seconds in zip(points, times[: len(points)], strict=True):
        chart["bars"].append(
            {
                "x": round(x_of(seconds) - bar_w / 2, 1),
                "y": round(y_of(value), 1),
                "width": round(bar_w, 1),
                "height": round(value / top * plot_h, 1),
                "label": f"{at:%Y-%m-%d %H:%M} UTC: {_fmt(value, unit)}",
            }
        )
    for at, value in apart:
        chart["ticks"].append(
            {
                "x": round(x_of(at.timestamp()) - bar_w / 2, 1),
                "width": round(bar_w, 1),
                "label": f"{at:%Y-%m-%d %H:%M} UTC: first built by a backfill, "
                f"{_fmt(value, unit)} after",
            }
        )
    chart["y_ticks"] = [(round(y_of(v), 1), _fmt(v, unit)) for v in (0, top / 2, top)]
    label = "%m-%d" if span > 4 * 86400 else "%m-%d %H:%M"
    ticks = min(len(points + apart), 4 if span > 4 * 86400 else 3)
    for i in range(ticks):
        seconds = first + span * 0.04 + (span * i / (ticks - 1) if ticks > 1 else 0)
        at = dt.datetime.fromtimestamp(seconds, dt.UTC)
        chart["x_ticks"].append((round(x_of(seconds), 1), f"{at:{label}}"))
    if threshold:
        chart["threshold"] = (round(y_of(threshold[0]), 1), threshold[1])
    return chart


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


BACKFILLED = "#9e9e9e"  # a day first built by the backfill that brought the mart live


def charts(mart: dict) -> list[dict]:
    """What the page plots for a mart, each chart with a line saying what it measures: hours
    from each day's close to its first serving against the SLA (days built by the backfill
    that brought the mart live apart, as grey ticks), then the cost (wall and CPU seconds)
    and rows of each refresh over time."""
    live = _at(mart["went_live"]) if mart.get("went_live") else None
    served, backfilled = [], []
    for p in mart["partitions"]:
        if first := p.get("first_built_at"):
            closed = day_closes(dt.date.fromisoformat(p["day"]))
            hours = max(0.0, (_at(first) - closed).total_seconds() / 3600)
            late = live is not None and _at(first) > live
            (served if late else backfilled).append((closed, hours))
    result = []
    if mart["partitions"]:
        sla = (mart["sla_hours"], f"SLA {mart['sla_hours']} h")
        chart = time_chart(
            served, "hours from day close to first serving", "h", "#2e7d32", sla, backfilled
        )
        chart["note"] = (
            "Each bar is a day of the SLA window first served while the mart was live: hours "
            "from the day's close (00:00 UTC) to its first build, against the SLA. Grey ticks "
            "are days first built by the backfill that brought the mart live: not late "
            "refreshes. Restatements of served days are judged from their arrival (the SLOs)."
        )
        result.append(chart)
    for key, title, unit, color, note in (
        (
            "seconds",
            "wall seconds per refresh",
            "s",
            "#1565c0",
            "Transform and write seconds recorded with each materialization of a partition.",
        ),
        (
            "cpu_seconds",
            "CPU seconds per refresh",
            "s",
            "#6a1b9a",
            "CPU seconds of the same work (above the wall seconds when it ran on both cores).",
        ),
        (
            "rows",
            "rows per refresh",
            "rows",
            "#00838f",
            "Rows the materialization wrote to the mart.",
        ),
    ):
        points = [(_at(r["at"]), float(r[key])) for r in mart["refreshes"]]
        result.append({**time_chart(points, title, unit, color), "note": note})
    return result


_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


def _readable(iso: str | None) -> str | None:
    return f"{_at(iso):%Y-%m-%d %H:%M} UTC" if iso else None


def render_html(report: dict) -> str:
    """The page: one self-contained file (inline SVG and CSS, no scripts, works offline)."""
    marts = [
        {**mart, "last_refresh": _readable(mart["last_refresh"]), "charts": charts(mart)}
        for mart in report["marts"]
    ]
    return _TEMPLATES.get_template("report.html.j2").render(
        generated_at=_readable(report["generated_at"]),
        marts=marts,
        failed=report.get("failed", {}),
        colors=COLORS,
        slo_figure=_slo_figure,
    )


def _slo_figure(value: float | None, sli: str) -> str:
    """An SLI or objective as people read it: a percentage, or hours for latency."""
    if value is None:
        return "-"
    if sli != "latency":
        return f"{value * 100:.2f} %"
    return f"{value:.1f} h" if value >= 1 else f"{value * 60:.0f} min"


def write_report(report: dict, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    page, data = folder / "report.html", folder / "report.json"
    page.write_text(render_html(report))
    data.write_text(json.dumps(report, indent=2))
    return page, data
