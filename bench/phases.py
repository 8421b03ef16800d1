"""Where a command's wall time went, read from what its runs recorded in the Dagster instance:
each step's duration, and inside steps the seconds every materialization reports (landing
parse, SQL transform, Iceberg write, audits, serving refresh)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance

PHASES = (
    "landing parse and validation",
    "SQL transforms",
    "Iceberg writes and commits",
    "audits",
    "serving refresh",
    "rest of the steps (reading inputs, check-only steps, step bookkeeping)",
    "outside steps (start-up, planning, run and event bookkeeping)",
)


def _seconds(metadata: dict, key: str) -> float:
    value = metadata.get(key)
    return float(value.value) if value is not None else 0.0


def phases(dagster_home: Path, wall: float) -> dict:
    """{phase: seconds} summing to `wall`, plus the number of runs and stored events."""
    spent: dict[str, float] = defaultdict(float)
    steps = 0.0
    runs = events = 0
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for run in instance.get_runs():
            runs += 1
            started: dict[str, float] = {}
            reported: dict = {}  # one materialization per asset and run (ranges repeat it)
            for entry in instance.all_logs(run.run_id):
                events += 1
                event = entry.dagster_event
                if event is None:
                    continue
                if event.event_type == DagsterEventType.STEP_START:
                    started[event.step_key] = entry.timestamp
                elif event.event_type in (
                    DagsterEventType.STEP_SUCCESS,
                    DagsterEventType.STEP_FAILURE,
                ):
                    steps += entry.timestamp - started.pop(event.step_key, entry.timestamp)
                elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
                    materialization = event.event_specific_data.materialization
                    reported[materialization.asset_key] = materialization.metadata
            for key, metadata in reported.items():
                raw = key.path[0] == "raw"
                transform = _seconds(metadata, "transform_seconds")
                audit = _seconds(metadata, "audit_seconds")
                serve = _seconds(metadata, "serving_seconds")
                spent[PHASES[0] if raw else PHASES[1]] += transform
                spent[PHASES[2]] += _seconds(metadata, "write_seconds") - audit - serve
                spent[PHASES[3]] += audit
                spent[PHASES[4]] += serve
    spent[PHASES[5]] = steps - sum(spent[p] for p in PHASES[:5])
    spent[PHASES[6]] = wall - steps
    return {"seconds": {p: spent[p] for p in PHASES}, "runs": runs, "events": events}


def render(breakdown: dict, wall: float) -> str:
    """The breakdown as Markdown table rows: phase, seconds, share of the wall time."""
    return "\n".join(
        f"| {phase} | {seconds:.1f} s | {100 * seconds / wall:.0f} % |"
        for phase, seconds in breakdown["seconds"].items()
    )
