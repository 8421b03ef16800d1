"""The Celery app a cluster worker runs (`celery -A marts_project.cluster.celery_app worker`).

It is dagster-celery's app (the tasks that execute a step of a run), pointed at the broker and
result backend of this deployment and given the same options as the runs that submit steps.
"""

import os

from dagster_celery.app import app

from marts_project.cluster.executor import CELERY_OPTIONS

app.conf.update(
    broker_url=os.environ["MARTS_CELERY_BROKER"],
    result_backend=os.environ["MARTS_CELERY_BACKEND"],
    **CELERY_OPTIONS,
)
