"""Progress of a run on the terminal, one line per step as it finishes (as dbt prints it), a
failed step with the first line of its error under it:

     12/58 OK     staging.stg_mkt_ad_stats               1,204 rows    0.8 s
      1/32 ERROR  raw.raw_mkt_ad_stats                                  0.0 s
           marts_project.raw.validation.SchemaDriftError: mkt_ad_stats: required column(s) ...

A Dagster logger: Dagster hands every logger each event of the run, so this works for any run
in this process (the CLI's in-process runs) without touching how steps execute.
"""

from __future__ import annotations

import logging
import sys

from dagster import AssetKey, Field, InitLoggerContext, logger

from marts_project.observability.failures import error_chain

_DONE = {"STEP_SUCCESS": "OK", "STEP_FAILURE": "ERROR"}
NAME_WIDTH = 64


class StepLines(logging.Handler):
    """Prints a line per finished step: its number, outcome, what it built, rows and seconds."""

    def __init__(self, total: int, stream=None) -> None:
        super().__init__(logging.DEBUG)
        self.total, self.stream, self.done = total, stream or sys.stdout, 0
        self.started: dict[str, float] = {}
        self.built: dict[str, tuple[str, int | None]] = {}
        self.checked: dict[str, tuple[str, list[str]]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dagster_event", None)
        if event is None or event.step_key is None:
            return
        kind, step = event.event_type_value, event.step_key
        if kind == "STEP_START":
            self.started[step] = record.created
        elif kind == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization
            rows = materialization.metadata.get("dagster/row_count")
            # a step over several partitions: one materialization each, with its own rows
            total = self.built.get(step, (None, None))[1]
            if rows is not None:
                total = (total or 0) + int(rows.value)
            self.built[step] = (_name(materialization.asset_key), total)
        elif kind == "ASSET_CHECK_EVALUATION":
            check = event.event_specific_data
            self.checked.setdefault(step, (_name(check.asset_key), []))[1].append(check.check_name)
        elif kind in _DONE:
            self.done += 1
            # a step that built nothing (failed, or checks only) is named as its asset is
            built = step in self.built
            name, rows = self.built.pop(step, (step.replace("__", "."), None))
            if step in self.checked and not built:  # a step of checks only
                asset, names = self.checked[step]
                name = f"{asset} checks {', '.join(names)}"
            self.checked.pop(step, None)
            if len(name) > NAME_WIDTH:  # the columns stay aligned
                name = name[: NAME_WIDTH - 1] + "…"
            seconds = record.created - self.started.pop(step, record.created)
            unit = "row " if rows == 1 else "rows"
            counted = f"{rows:>10,} {unit}" if rows is not None else " " * 15
            print(
                f"{self.done:>4}/{self.total:<4} {_DONE[kind]:<6} {name:<{NAME_WIDTH}} {counted} "
                f"{seconds:>7.1f} s",
                file=self.stream,
                flush=True,
            )
            if kind == "STEP_FAILURE":  # what failed, in one line: no stack trace
                message, _ = error_chain(event.event_specific_data.error)
                print(f"{'':>10} {message}", file=self.stream, flush=True)


def _name(key: AssetKey) -> str:
    return ".".join(key.path)


@logger(
    config_schema={"total_steps": Field(int, description="steps in the run, for the counter")},
    description="One line per finished step on standard output (the CLI's progress).",
)
def progress_logger(init_context: InitLoggerContext) -> logging.Logger:
    """A logger whose only handler prints finished steps."""
    lines = logging.Logger("marts.progress", logging.DEBUG)
    lines.addHandler(StepLines(init_context.logger_config["total_steps"]))
    return lines
