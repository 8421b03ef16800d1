"""The Celery app a cluster worker runs (`celery -A marts_project.cluster.celery_app worker`).

Its one task runs a whole run (`instance/celery_task.py`, which also holds the client the
daemon's launcher sends runs with). The worker's main process imports the libraries runs use
before it forks its pool, so a pool process's first run does not wait for them
(`instance/preload.py`); it never imports the code location, which each pool process loads as
it is on disk when it starts.
"""

from __future__ import annotations

from celery import Celery


def worker_app() -> Celery:
    """The app a worker runs: the client's, with the run task, in a process set up for marts."""
    from marts_project import process
    from marts_project.instance.celery_task import client, register
    from marts_project.instance.preload import import_libraries

    process.set_up()
    app = client()
    register(app)
    import_libraries()
    return app


def __getattr__(name: str) -> Celery:
    """`celery -A` reads this module's `app`: built on that first read, not on import."""
    if name != "app":
        raise AttributeError(name)
    globals()["app"] = built = worker_app()
    return built
