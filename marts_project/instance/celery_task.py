"""The cluster's step task: dagster-celery's `execute_plan`, except that each worker process
keeps one Dagster instance, on pooled PostgreSQL connections, for every step it runs.

Why: dagster-celery's task opens a new instance for every step (`DagsterInstance.from_ref`:
new storages and engines, about 0.1 s), and Dagster's PostgreSQL storages open a new
connection for every read and write (SQLAlchemy's NullPool: 20 ms a query against 3 ms on a
kept connection, measured on this machine); a step reads its run and stores 10 to 40 events.
A worker's instance is opened on its first step, in the worker's own process (never before a
fork), and switched to pooled connections with Dagster's own method for long-lived processes
(`optimize_for_webserver`: one kept connection plus overflow, recycled hourly, no statement
timeout). Everything else is dagster-celery's task as it is: the same name, arguments, plan,
engine event and returned events, so the runs that submit steps are unchanged. One addition:
a worker process runs a step only on the code version it loaded (`leave_if_code_changed`);
definitions are built once per process, so after an edit it would otherwise have run the
code it loaded first until the cluster restarted.

Private API, isolated here: the task's body is dagster-celery's (`dagster_celery.tasks.
create_task`), which has no hook for the instance; it uses the step arguments, plan and
execution functions Dagster exports only from private modules. If an upgrade moves them, the
worker fails to start with an error naming this module; the fallback is to remove the
`register` call in `cluster/celery_app.py` (dagster-celery's own task).
"""

from __future__ import annotations

import logging
import os

from celery import Celery
from dagster import DagsterInstance

# Private: the run's job as the task receives it (a reconstructable job's dict); dagster-celery
# rebuilds it the same way, and no public API takes that dict.
from dagster._core.definitions.reconstruct import ReconstructableJob

# Private: the payload of the engine event that marks a step handed to a worker; the event is
# public, its payload class is not exported.
from dagster._core.events import EngineEventData

# Private: planning and running a step of an existing run, what every executor calls; the
# public API runs whole jobs only.
from dagster._core.execution.api import create_execution_plan, execute_plan_iterator

# Private: the arguments a run's executor sends with each step (dagster-celery's wire format).
from dagster._grpc.types import ExecuteStepArgs

# Private: the serialization of those arguments and of the events returned, as dagster-celery
# does it (the run's executor unpacks them).
from dagster._serdes import serialize_value, unpack_value
from dagster_celery.config import TASK_EXECUTE_PLAN_NAME
from dagster_celery.core_execution_loop import DELEGATE_MARKER
from dagster_celery.executor import CeleryExecutor

from marts_project.instance.code_version import code_version
from marts_project.instance.marts_instance import keep_connections

_INSTANCES: dict[tuple[int, str], DagsterInstance] = {}  # (process id, instance ref) -> kept
_LOADED: dict[tuple[int, str], str] = {}  # (process id, code location) -> its version loaded
CODE_CHANGED = 75  # a worker process's exit status when it leaves to load edited code
log = logging.getLogger(__name__)


def worker_instance(ref) -> DagsterInstance:
    """This process's instance for `ref`, opened on first use with pooled connections."""
    key = (os.getpid(), serialize_value(ref))
    if key not in _INSTANCES:
        instance = DagsterInstance.from_ref(ref)
        keep_connections(instance)
        _INSTANCES[key] = instance
    return _INSTANCES[key]


def leave_if_code_changed(job: ReconstructableJob) -> None:
    """End this worker process, before the step starts, when the job's code changed since the
    process loaded it (an edited mart SQL, contract or Python): the step is handed back to the
    broker (the task is acknowledged only when it ends, and requeued when its process is lost)
    and runs in a new worker process, which Celery forks from the worker's main process (which
    never loads a code location) and which loads the edited code."""
    pointer = job.repository.pointer
    version = code_version(pointer)
    if version is None:  # not a package this process can watch: as dagster-celery runs it
        return
    loaded = _LOADED.setdefault((os.getpid(), serialize_value(pointer)), version)
    if loaded != version:
        log.warning(
            "the code of %s changed since this worker process loaded it: the process leaves "
            "and its step is run again by a new one, on the edited code",
            getattr(pointer, "module", pointer),
        )
        logging.shutdown()
        os._exit(CODE_CHANGED)


def register(app: Celery) -> None:
    """Make `app`'s step task this one (in place of dagster-celery's, under its name)."""
    app.tasks.unregister(TASK_EXECUTE_PLAN_NAME)

    @app.task(bind=True, name=TASK_EXECUTE_PLAN_NAME)
    def execute_plan(self, execute_step_args_packed: dict, executable_dict: dict) -> list[str]:
        args = unpack_value(execute_step_args_packed, as_type=ExecuteStepArgs)
        instance = worker_instance(args.instance_ref)
        job = ReconstructableJob.from_dict(executable_dict)
        leave_if_code_changed(job)
        run = instance.get_run_by_id(args.run_id)
        if run is None:
            raise LookupError(f"run {args.run_id} is not in the instance this worker reads")
        plan = create_execution_plan(
            job,
            run.run_config,
            step_keys_to_execute=args.step_keys_to_execute,
            known_state=args.known_state,
        )
        step_keys = ", ".join(args.step_keys_to_execute or [])
        events = [
            instance.report_engine_event(
                f"Executing steps {step_keys} in celery worker",
                run,
                EngineEventData(
                    {"step_keys": step_keys, "Celery worker": self.request.hostname},
                    marker_end=DELEGATE_MARKER,
                ),
                CeleryExecutor,
                step_key=plan.step_handle_for_single_step_plans().to_key(),
            )
        ]
        events += execute_plan_iterator(
            execution_plan=plan,
            job=job,
            dagster_run=run,
            instance=instance,
            retry_mode=args.retry_mode,
            run_config=run.run_config,
        )
        return [serialize_value(event) for event in events]
