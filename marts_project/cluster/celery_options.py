"""How Celery hands out runs, the same for the launcher that sends them and the workers."""

# A run's task is acknowledged only when it has finished (`task_acks_late`), and a worker takes
# one task at a time (prefetch 1): an idle worker gets the next run, rather than a busy one
# reserving it. A task whose worker was lost (SIGKILL, OOM, a lost host) is handed to another
# worker: a run that had not started starts there; one that had is ignored by Dagster and
# failed by run monitoring, then retried as a new run (`instance/celery_task.py`). RabbitMQ
# closes a delivery unacknowledged for longer than its `consumer_timeout` (30 minutes by
# default): a deployment whose runs take longer raises it (docs/scaling.md).
CELERY_OPTIONS: dict[str, object] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
}
