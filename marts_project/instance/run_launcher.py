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

from marts_project.core.processes import alive
from marts_project.instance.run_host import RunHost

GRPC_INFO_TAG = ".dagster/grpc_info"  # where the launcher records the code server it asked
# The metadata of the engine event a Celery worker logs when it takes a run: its name and host.
WORKER, HOST = "Celery worker", "host"
HERE = ("localhost", "127.0.0.1", "::1", socket.gethostname())


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
        pid, host = self.worker_of(self._instance, run)
        if host not in HERE:  # a process this host cannot signal (nor tell apart from its own)
            return False
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
        pid, host = self.worker_of(self._instance, run)
        if host not in HERE:  # run monitoring's `max_runtime_seconds` then bounds it
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, f"run worker is on {host}")
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
    def worker_of(instance: DagsterInstance, run: DagsterRun) -> tuple[int | None, str]:
        """The run worker's pid (from the engine event it logs when it starts) and its host:
        the Celery worker's that took the run (from the event it logs first), else the code
        server's the launcher asked, else this one. One read of the run's engine events."""
        pid, host = None, None
        for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT):
            data = entry.dagster_event.engine_event_data if entry.dagster_event else None
            metadata = data.metadata if data else {}
            if host is None and WORKER in metadata and HOST in metadata:
                host = metadata[HOST].value
            if pid is None and metadata.get("pid") is not None:
                pid = int(metadata["pid"].value)
        tagged = json.loads(run.tags.get(GRPC_INFO_TAG, "{}")).get("host")
        return pid, host or tagged or "localhost"

    @staticmethod
    def worker_pid(instance: DagsterInstance, run_id: str) -> int | None:
        """The run worker's pid, from the engine event it logs when it starts."""
        run = instance.get_run_by_id(run_id)
        return LocalRunLauncher.worker_of(instance, run)[0] if run else None
