"""How Celery runs a step, the same for the runs that submit steps and the workers that run them."""

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
