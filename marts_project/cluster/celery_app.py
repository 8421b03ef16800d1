"""The Celery app of the cluster: `celery -A marts_project.cluster.celery_app worker` runs it,
and the daemon's launcher sends it runs (`client`).

Its one task runs a whole run (`instance/celery_task.py`). The worker's main process imports
the libraries runs use before it forks its pool, so a pool process's first run does not wait
for them (`instance/preload.py`); it never imports the code location, which each pool process
loads as it is on disk.
"""

from __future__ import annotations

from celery import Celery

from marts_project.cluster.celery_options import CELERY_OPTIONS
from marts_project.settings import celery_urls


def client() -> Celery:
    """An app on this deployment's broker and result backend (read from the environment),
    with the cluster's options: what the launcher sends runs with."""
    broker, backend = celery_urls()
    app = Celery("marts", broker=broker, backend=backend)
    app.conf.update(**CELERY_OPTIONS)
    return app


def worker_app() -> Celery:
    """The app a worker runs: the client's, with the run task, in a process set up for marts."""
    from marts_project import process
    from marts_project.instance.celery_task import register
    from marts_project.instance.preload import import_libraries

    process.set_up()
    app = client()
    register(app)
    import_libraries()
    return app


def __getattr__(name: str) -> Celery:
    """`celery -A` reads this module's `app`: built on that first read, not on import (the
    daemon imports `client` alone)."""
    if name != "app":
        raise AttributeError(name)
    globals()["app"] = built = worker_app()
    return built
