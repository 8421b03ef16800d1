"""A run launcher for single-host deployments that tells run monitoring when a run's worker died.

Dagster's DefaultRunLauncher cannot say whether a run worker is alive, so a run whose process
was killed (with the daemon, by the OOM killer, by a reboot) stays STARTED forever and its
backfill never finishes. On one host the answer is simple: the run worker logged its pid when
it started ("Started process for run (pid: N)"); if that process is gone and the run is not
finished, the worker failed. Run monitoring then marks the run failed and `run_retries`
re-executes it, so the partition converges by policy.

It starts run workers by forking them from a warm run host (`run_host.py` says why) rather
than asking the code server to start a fresh interpreter for each, and cancels a run by
signalling its worker, which Dagster's interrupt capture turns into the run's cancellation.
"""

import json
import os
import signal
import socket
from functools import cached_property

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DefaultRunLauncher

# Private: what `check_run_worker_health` returns and what `launch_run` is given; run
# monitoring and the run coordinator call those methods on any launcher, but these types are
# not exported.
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, WorkerStatus

# Private: the instance reference a run worker opens, as Dagster serializes it.
from dagster._serdes import serialize_value

from marts_project.core.processes import alive
from marts_project.instance.run_host import RunHost

GRPC_INFO_TAG = ".dagster/grpc_info"  # where the launcher records the code server it asked


class LocalRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher whose run workers are forked on this host, with health checks."""

    @cached_property
    def _host(self) -> RunHost:
        return RunHost()

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        if not self._host.start_run(self._instance, run):  # not code the host can load
            super().launch_run(context)  # and watch: the code server starts it
            return
        self._run_ids.add(run.run_id)

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        pid = self.worker_pid(self._instance, run_id)
        if pid is None or not alive(pid):  # not started yet (its worker will see it canceled
            self._instance.report_run_canceled(run)  # and not start it), or its worker is gone
            return True
        self._instance.report_run_canceling(run)
        os.kill(pid, signal.SIGINT)  # the worker cancels the run and reports it canceled
        return True

    def dispose(self) -> None:
        if "_host" in self.__dict__:  # started only by a launch
            self._host.close()
        super().dispose()

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        host = json.loads(run.tags.get(GRPC_INFO_TAG, "{}")).get("host") or "localhost"
        if host not in ("localhost", "127.0.0.1", "::1", socket.gethostname()):
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, f"run worker is on {host}")
        pid = self.worker_pid(self._instance, run.run_id)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "run worker has not started yet")
        if alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"run worker process {pid} is gone but the run never finished (killed?)",
            run_worker_id=str(pid),
        )

    @staticmethod
    def worker_pid(instance: DagsterInstance, run_id: str) -> int | None:
        """The run worker's pid, from the engine event it logs when it starts."""
        for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
            event = entry.dagster_event
            data = event.engine_event_data if event else None
            if data and data.metadata.get("pid") is not None:
                return int(data.metadata["pid"].value)
        return None


class CeleryRunLauncher(LocalRunLauncher):
    """The cluster's launcher: each run is a task on the cluster's queue, which a Celery worker
    process runs in itself (`celery_task.py` says why runs, not steps). Health checks and
    cancellation are `LocalRunLauncher`'s (the worker logs its pid when the run starts) for a
    worker on the daemon's host, as `marts cluster up` starts them. Celery and the task are
    imported on first use: the embedded deployment's processes load this module too."""

    @cached_property
    def _celery(self):
        from marts_project.instance.celery_task import client

        return client()

    def launch_run(self, context: LaunchRunContext) -> None:
        from marts_project.instance.celery_task import QUEUE, TASK_EXECUTE_RUN

        run = context.dagster_run
        ref = serialize_value(self._instance.get_ref())
        self._celery.send_task(TASK_EXECUTE_RUN, args=[ref, run.run_id], queue=QUEUE)

    def dispose(self) -> None:
        if "_celery" in self.__dict__:
            self._celery.close()
        super().dispose()

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        """`LocalRunLauncher`'s check for a run a worker on this host took; UNKNOWN for one on
        another host, whose processes this daemon cannot see (run monitoring's
        `max_runtime_seconds` then bounds it)."""
        from marts_project.instance.celery_task import HOST, WORKER

        for entry in self._instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT):
            data = entry.dagster_event.engine_event_data if entry.dagster_event else None
            host = data.metadata.get(HOST) if data and WORKER in data.metadata else None
            if host is not None and host.value != socket.gethostname():
                return CheckRunHealthResult(
                    WorkerStatus.UNKNOWN,
                    f"run taken by {data.metadata[WORKER].value} on {host.value}",
                )
        return super().check_run_worker_health(run)
