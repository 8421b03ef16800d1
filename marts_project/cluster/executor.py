"""The step executor a deployment's settings name: in-process, local processes, or Celery."""

from __future__ import annotations

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

EXECUTORS = ("in_process", "multiprocess", "celery")

# Celery options shared by the run workers that submit steps and the Celery workers that run
# them. A step's task is acknowledged only when it has finished (`task_acks_late`), so a worker
# killed mid-step (SIGKILL, OOM, a lost host) leaves its task on the broker, which hands it to
# another worker; every write replaces its own partitions under a write id, so running a step
# again is safe. One task per worker process at a time: a step is seconds to minutes of work.
CELERY_OPTIONS: dict[str, object] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
}


def executor_for(name: str) -> ExecutorDefinition:
    """The executor of a deployment; Celery's broker and result backend URLs (credentials
    included) are read from the environment when a run starts, never stored in code."""
    if name == "in_process":
        return in_process_executor
    if name == "multiprocess":
        return multiprocess_executor
    if name == "celery":
        from dagster_celery import celery_executor  # the cluster deployment's dependency

        return celery_executor.configured(
            {
                "broker": {"env": "MARTS_CELERY_BROKER"},
                "backend": {"env": "MARTS_CELERY_BACKEND"},
                "config_source": CELERY_OPTIONS,
            },
            name="celery",
        )
    raise ValueError(f"MARTS_EXECUTOR={name!r}: expected one of {', '.join(EXECUTORS)}")
