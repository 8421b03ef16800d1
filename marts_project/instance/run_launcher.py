"""A run launcher for single-host deployments that tells run monitoring when a run's worker died.

Dagster's DefaultRunLauncher cannot say whether a run worker is alive, so a run whose process
was killed (with the daemon, by the OOM killer, by a reboot) stays STARTED forever and its
backfill never finishes. On one host the answer is simple: the run worker logged its pid when
it started ("Started process for run (pid: N)"); if that process is gone and the run is not
finished, the worker failed. Run monitoring then marks the run failed and `run_retries`
re-executes it, so the partition converges by policy.
"""

import json
import socket

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DefaultRunLauncher

# Private: what `check_run_worker_health` returns; run monitoring calls that method on any
# launcher, but its result types are not exported.
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

from marts_project.core.processes import alive

GRPC_INFO_TAG = ".dagster/grpc_info"  # where the launcher records the code server it asked


class LocalRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher plus worker health checks for run workers on this host."""

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
