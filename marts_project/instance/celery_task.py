"""The cluster's run task and its launcher: `CeleryRunLauncher` sends each run to the Celery
queue, and a worker process runs whole runs, one after another, in its own process, as the
embedded deployment runs them in the `marts` command's.

Why runs, not steps: with a task per step (dagster-celery's executor) every step paid a fixed
cost on top of its work: its result back through Redis, the run's loop looking for it, the
next task through RabbitMQ, and the step's own set-up in the worker (the job's subset, its
resources, its plan: about 0.1 s). Measured on one worker, 7 days x 300 rows, both on the same
S3 storage: 2.1x to 2.5x the embedded deployment, a third of it between steps. A run's steps
depend on each other (raw, staging, intermediate, marts), so spreading one run's steps over
workers gained little; a backfill's runs (daily chunks, then weeks, months and dimensions) are
what can go at once. So a task is a run, its steps in process with their outputs kept in
memory between them; a worker with `--concurrency=1` is one run at a time, and workers add runs
at once. Why in the worker process and not in a process forked per run: a process keeps its
catalog and storage connections and the table metadata it parsed from one run to the next
(a run forked afresh read them all again: 1 to 1.5 s for a run of two or three steps at demo
size, against 0.3 s in a process that ran the runs before it).

What stays Dagster's: the run's status, events, retries and monitoring. The task runs exactly
what `dagster api execute_run` runs (`_execute_run_command_body`): the run worker logs its pid
(this process's) when it starts, which run monitoring reads (`LocalRunLauncher.
check_run_worker_health`: the workers run on the daemon's host in this deployment), and a
SIGINT from `terminate` cancels the run (`capture_interrupts`). A run whose worker was killed
is failed by run monitoring and re-executed from its failure by `run_retries`. A task is
acknowledged only when it ends, so one whose worker was killed before its run started is
handed to another worker; one whose run had started is ignored by Dagster when delivered again
(the run is no longer NOT_STARTED or STARTING, and run monitoring owns it).

A worker process keeps one Dagster instance on pooled PostgreSQL connections
(`worker_instance`), and runs a run only on the code version it loaded (`leave_if_code_changed`):
definitions are built once per process, so after an edit it would otherwise run the code it
loaded first until the cluster restarted.

Private API, isolated here: the body of `dagster api execute_run` and its interrupt capture, as
in `run_host.py`; if an upgrade moves them, the worker fails to start with an error naming this
module.
"""

from __future__ import annotations

import logging
import os
import socket
from functools import cached_property

from celery import Celery, Task
from celery.signals import worker_process_init
from dagster import DagsterInstance, DagsterRun

# Private: `dagster api execute_run`'s body (no public API runs an existing run in this
# process).
from dagster._cli.api import _execute_run_command_body

# Private: where a run's code comes from (a module or a file), as runs carry it.
from dagster._core.code_pointer import CodePointer, ModuleCodePointer

# Private: loading a code location from its pointer, as Dagster's run workers do.
from dagster._core.definitions.reconstruct import ReconstructableRepository

# Private: the payload of the engine event that records the worker a run went to; the event is
# public, its payload class is not exported.
from dagster._core.events import EngineEventData

# Private: what a launcher is given to launch a run; the run coordinator calls `launch_run` on
# any launcher, but the type is not exported.
from dagster._core.launcher import LaunchRunContext

# Private: the instance reference the launcher sends, as Dagster serializes it.
from dagster._serdes import deserialize_value, serialize_value

# Private: how Dagster's run workers turn SIGINT into a cancellation of the run.
from dagster._utils.interrupts import capture_interrupts

from marts_project.instance.code_version import code_version
from marts_project.instance.marts_instance import keep_connections
from marts_project.instance.run_launcher import HOST, WORKER, LocalRunLauncher
from marts_project.settings import celery_urls

TASK_EXECUTE_RUN = "marts.execute_run"
QUEUE = "dagster"  # the queue the cluster's workers read (`--queues`)
CODE_CHANGED = 75  # a worker process's exit status when it leaves to load edited code

# A run's task is acknowledged only when it has finished (`task_acks_late`), and a worker takes
# one task at a time (prefetch 1): an idle worker gets the next run, rather than a busy one
# reserving it. A task whose worker was lost (SIGKILL, OOM, a lost host) is handed to another
# worker: a run that had not started starts there; one that had is ignored by Dagster and
# failed by run monitoring, then retried as a new run (above). RabbitMQ
# closes a delivery unacknowledged for longer than its `consumer_timeout` (30 minutes by
# default): a deployment whose runs take longer raises it (docs/scaling.md).
CELERY_OPTIONS: dict[str, object] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
    # a run's own log lines (Dagster prints each event) are INFO in the worker's log, not WARNING
    "worker_redirect_stdouts_level": "INFO",
}

_INSTANCES: dict[tuple[int, str], DagsterInstance] = {}  # (process id, instance ref) -> kept
_LOADED: dict[tuple[int, str], str] = {}  # (process id, code location) -> its version loaded
LOCATION = ModuleCodePointer("marts_project.definitions", "defs", None)  # what the cluster runs
log = logging.getLogger(__name__)


def client() -> Celery:
    """An app on this deployment's broker and result backend (read from the environment),
    with the cluster's options: what the launcher sends runs with, and what a worker runs."""
    broker, backend = celery_urls()
    app = Celery("marts", broker=broker, backend=backend)
    app.conf.update(**CELERY_OPTIONS)
    return app


def worker_instance(ref) -> DagsterInstance:
    """This process's instance for `ref`, opened on first use with pooled connections."""
    key = (os.getpid(), serialize_value(ref))
    if key not in _INSTANCES:
        instance = DagsterInstance.from_ref(ref)
        keep_connections(instance)
        _INSTANCES[key] = instance
    return _INSTANCES[key]


def leave_if_code_changed(run: DagsterRun) -> None:
    """End this worker process, before the run starts, when its code changed since the process
    loaded it (an edited mart SQL, contract or Python): the task is handed back to the broker
    (it is acknowledged only when it ends, and requeued when its process is lost) and runs in a
    new worker process, which Celery forks from the worker's main process (which never loads a
    code location) and which loads the edited code."""
    origin = run.job_code_origin.repository_origin if run.job_code_origin else None
    pointer = origin.code_pointer if origin is not None else None
    version = code_version(pointer) if pointer is not None else None
    if version is None:  # not a package this process can watch: loaded as Dagster loads it
        return
    loaded = _LOADED.setdefault((os.getpid(), _location(pointer)), version)
    if loaded != version:
        log.warning(
            "the code of %s changed since this worker process loaded it: the process leaves "
            "and its run is started by a new one, on the edited code",
            getattr(pointer, "module", pointer),
        )
        logging.shutdown()
        os._exit(CODE_CHANGED)


def _location(pointer: CodePointer) -> str:
    return getattr(pointer, "module", None) or serialize_value(pointer)


def warm_up(**_) -> None:
    """Load the cluster's code location in a new worker process before its first run (about a
    second), with the version it loaded; a location that does not load is left for the run,
    which fails with the error."""
    version = code_version(LOCATION)
    try:
        ReconstructableRepository(LOCATION).get_definition()
    except Exception:  # noqa: BLE001 - the run loads it again and reports the error
        log.exception("the code location did not load; its runs will fail with this error")
        return
    if version is not None:
        _LOADED.setdefault((os.getpid(), _location(LOCATION)), version)


def execute_run(task: Task, instance_ref: str, run_id: str) -> str:
    """Run `run_id` in this process, as `dagster api execute_run` does, after recording which
    worker took it (the run's log says so in the UI); its final status."""
    instance = worker_instance(deserialize_value(instance_ref))
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise LookupError(f"run {run_id} is not in the instance this worker reads")
    leave_if_code_changed(run)
    worker = task.request.hostname
    instance.report_engine_event(
        f"Run taken by Celery worker {worker}",
        run,
        EngineEventData({WORKER: worker, HOST: socket.gethostname()}),
    )
    with capture_interrupts():
        _execute_run_command_body(
            run_id, instance, write_stream_fn=lambda _: None, set_exit_code_on_failure=False
        )
    return instance.get_run_by_id(run_id).status.value


def register(app: Celery) -> None:
    """Give `app` the run task, and its worker processes their code location when they start."""
    app.task(name=TASK_EXECUTE_RUN, bind=True)(execute_run)
    worker_process_init.connect(warm_up, weak=False)


class CeleryRunLauncher(LocalRunLauncher):
    """The cluster's launcher: each run is a task on the cluster's queue, which a Celery worker
    process runs in itself (above: why runs, not steps). Health checks and
    cancellation are `LocalRunLauncher`'s: the worker logs its pid and host when it takes the
    run, and only a worker on the daemon's host, as `marts cluster up` starts them, is judged
    or signalled."""

    @cached_property
    def _celery(self) -> Celery:
        return client()

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        ref = serialize_value(self._instance.get_ref())
        self._celery.send_task(TASK_EXECUTE_RUN, args=[ref, run.run_id], queue=QUEUE)

    def dispose(self) -> None:
        if "_celery" in self.__dict__:
            self._celery.close()
        super().dispose()
