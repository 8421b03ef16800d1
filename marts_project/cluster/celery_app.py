"""The Celery app a cluster worker runs (`celery -A marts_project.cluster.celery_app worker`).

It is dagster-celery's app (the tasks that execute a step of a run), pointed at the broker and
result backend of this deployment and given the same options as the runs that submit steps;
its step task keeps one Dagster instance per worker process (`instance/celery_task.py`). The
worker's main process imports the libraries steps use before it forks its pool, so a new pool
process's first step does not wait for them (`instance/preload.py`); it still never imports
the code location, which each pool process loads as it is on disk.
"""

from marts_project import process

process.set_up()

from dagster_celery.app import app

from marts_project.cluster.celery_options import CELERY_OPTIONS
from marts_project.instance.celery_task import register
from marts_project.instance.preload import import_libraries
from marts_project.settings import celery_urls

broker, backend = celery_urls()
app.conf.update(broker_url=broker, result_backend=backend, **CELERY_OPTIONS)
register(app)
import_libraries()
