"""Records in the audit trail every run someone launched by hand in the UI (a materialization,
a backfill, a maintenance run) or through Dagster's own CLI or Python API: the sensors,
schedules, automation and the marts CLI tag their own runs, and the marts CLI records its
actions itself."""

import datetime as dt
import json

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from marts_project.core.partitions import RANGE_END, run_range
from marts_project.instance.run_launcher import GRPC_INFO_TAG
from marts_project.resources.audit_trail import AuditTrail

FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
# Tags of runs nobody launched by hand (or that the CLI records itself).
NOT_MANUAL = (
    "marts/trigger",
    "dagster/schedule_name",
    "dagster/sensor_name",
    "dagster/auto_materialize",
)
ANONYMOUS = "ui (open-source Dagster has no login)"
UNNAMED = "dagster CLI or Python API (no user recorded)"


def launcher_of(tags: dict[str, str]) -> tuple[str, str]:
    """(who, how) of a manual run: its user tag if it has one, else the UI or the CLI."""
    # a run the UI (or the daemon, for a UI backfill) launched went through the run launcher,
    # which tags the code server it asked; `dagster asset materialize` and Python's
    # `execute_job` run in their own process and carry no such tag, nor any user
    through_ui = GRPC_INFO_TAG in tags
    who = tags.get("marts/user") or tags.get("user") or (ANONYMOUS if through_ui else UNNAMED)
    return who, "ui_run" if through_ui else "manual_run"


def is_manual(tags: dict[str, str]) -> bool:
    return not any(tag in tags for tag in NOT_MANUAL)


def build_audit_sensor(interval_seconds: int = 30, running: bool = True):
    """The sensor that writes an audit entry for each manual run once it has finished."""

    @sensor(
        name="audit_sensor",
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.RUNNING if running else DefaultSensorStatus.STOPPED,
        description="Records every run launched by hand in the UI in the audit trail.",
    )
    def audit_sensor(context: SensorEvaluationContext, audit: AuditTrail):
        """Cursor: the update time of the newest finished run looked at, and the runs seen at
        or just before it (timestamps are not unique: a run is never recorded twice)."""
        state = json.loads(context.cursor) if context.cursor else {"since": None, "seen": []}
        since, seen = state["since"], set(state["seen"])
        finished = RunsFilter(
            statuses=FINISHED,
            updated_after=dt.datetime.fromtimestamp(since - 1, dt.UTC) if since else None,
        )
        records = sorted(
            (
                r
                for r in context.instance.get_run_records(finished)
                if r.dagster_run.run_id not in seen
            ),
            key=lambda r: r.update_timestamp,
        )
        recorded = 0
        for record in records:
            run = record.dagster_run
            if not is_manual(run.tags):
                continue
            days = ""
            if covered := run_range(run.tags):  # a range run's days as `first..last`
                days = f"{covered[0]}..{covered[1]}" if RANGE_END in run.tags else covered[0]
            params = {"run_id": run.run_id, "backfill": run.tags.get("dagster/backfill", "")}
            result = "ok" if run.status == DagsterRunStatus.SUCCESS else run.status.value.lower()
            who, how = launcher_of(run.tags)
            audit.append(
                how,
                f"{run.job_name} {days}".strip(),
                {k: v for k, v in params.items() if v},
                result,
                who=who,
            )
            recorded += 1
        if records:
            newest = records[-1].update_timestamp.timestamp()
            recent = {
                r.dagster_run.run_id for r in records if r.update_timestamp.timestamp() > newest - 1
            }
            if since is not None and newest - since < 1:
                recent |= seen
            context.update_cursor(json.dumps({"since": newest, "seen": sorted(recent)}))
        if not recorded:
            return SkipReason("no manual run finished since the last tick")
        return None

    return audit_sensor
