"""The Dagster instance of every deployment: Dagster's own, except that a run's failure is
recorded in the order that keeps a crashed run's automatic retry from being lost.

Why: Dagster stores a run-failure event first, then marks the run failed, then tags whether it
will be retried (`dagster/will_retry`). Two daemons read in between:
- the run-retry daemon reads each new failure event once; if the run is not yet marked failed,
  it decides "no retry" and moves its cursor past the event for good, while the tag written a
  moment later says "will retry": a backfill then waits forever for a retry nobody launches;
- the backfill daemon, seeing a failed run without the tag yet, ends the backfill as failed
  before the retry is launched.
Both happened in the suite under load (a run worker killed with the daemon). Here the decision
is tagged first, then the run marked failed, and only then the event stored, so every reader
that sees the failure sees the run failed and whether it will be retried. Dagster then does its
own two writes again, which change nothing.

A long-lived process (the daemon, a Celery worker) keeps its PostgreSQL connections
(`keep_connections`): Dagster's PostgreSQL storages open a new connection for every read and
write (SQLAlchemy's NullPool) outside its webserver, 12.6 ms an event against 2.1 ms on a kept
connection (measured here). The daemon writes every run's plan when it creates the run (one
event per asset and partition: about 250 for a 7-day chunk, 3 s on new connections) and reads
the storages on every tick of its loops. A kept connection is tested when it is taken from
its pool (a `select 1`, one round trip) and replaced when it is dead: after PostgreSQL restarts
or drops idle sessions, the next query of every such process failed (a step or a run failed
with "server closed the connection unexpectedly"), where a new connection per query did not.

Private API, isolated here: Dagster's retry rule (`auto_reexecution_should_retry_run`, the one
its own event handling calls) lives in `dagster._core.execution.retries`, and a custom instance
class takes its storage defaults from `dagster._core.instance.ref.InstanceRef`. If an upgrade
moves either, the instance fails to load with an error naming this module; the fallback is to
delete the `instance_class` block of `dagster.yaml` (Dagster's default order, with the race).
"""

import contextlib
import datetime as dt

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, EventLogEntry

# Private: the failure event's payload type (its failure reason); events are public, their
# payload classes are not exported.
from dagster._core.events import JobFailureData

# Private: Dagster's own retry rule, the one its event handling calls; re-implementing it would
# let the two disagree on whether a run retries.
from dagster._core.execution.retries import auto_reexecution_should_retry_run

# Private: the storage defaults a custom instance class must provide (`config_defaults`), which
# only InstanceRef knows; there is no public way to subclass DagsterInstance without it.
from dagster._core.instance.ref import InstanceRef
from sqlalchemy import event, exc
from sqlalchemy.pool import Pool

WILL_RETRY_TAG = "dagster/will_retry"  # the tag Dagster's run-retry daemon reads
POOL_RECYCLE_SECONDS = 3600
POOL_OVERFLOW = 10  # connections beyond the kept one, for a process's threads


def keep_connections(instance: DagsterInstance) -> None:
    """Switch `instance`'s storages to pooled connections, with Dagster's own method for its
    long-lived webserver: one kept connection plus overflow, recycled hourly, no statement
    timeout (a no-op on SQLite storages); every pooled connection of the process is tested
    before use (`_ping_on_checkout`)."""
    if not event.contains(Pool, "checkout", _ping_on_checkout):
        event.listen(Pool, "checkout", _ping_on_checkout)
    instance.optimize_for_webserver(
        statement_timeout=0, pool_recycle=POOL_RECYCLE_SECONDS, max_overflow=POOL_OVERFLOW
    )


def _ping_on_checkout(dbapi_connection, _record, _proxy) -> None:
    """A pooled connection the server closed (a restart, an idle-session limit) is replaced
    before it is used: SQLAlchemy's documented way, a `DisconnectionError` raised on checkout
    makes the pool open a new connection. Applies to every pool of the process, Dagster's
    storages and the Iceberg catalog's alike (Dagster's `optimize_for_webserver` takes no
    pre-ping option)."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("select 1")
    except Exception as error:  # noqa: BLE001 - any failure means the connection is unusable
        raise exc.DisconnectionError(f"a kept connection was closed: {error}") from error
    finally:
        with contextlib.suppress(Exception):  # a dead connection's cursor may refuse it
            cursor.close()


class MartsInstance(DagsterInstance):
    """DagsterInstance that decides and tags a failed run's retry before its failure is seen;
    in a long-lived process (`long_lived`, set by the daemon's command) it keeps connections."""

    long_lived = False  # set before the process opens its instance

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if MartsInstance.long_lived:
            keep_connections(self)

    @classmethod
    def config_schema(cls) -> dict:
        """No settings of its own (Dagster asks every custom instance class)."""
        return {}

    @staticmethod
    def config_defaults(base_dir: str) -> dict:
        return InstanceRef.config_defaults(base_dir)

    def handle_new_event(self, event: EventLogEntry, *, batch_metadata=None) -> None:
        if self._is_failure_to_order(event):
            self._fail_run_before_its_event(event)
        super().handle_new_event(event, batch_metadata=batch_metadata)

    def _is_failure_to_order(self, event: EventLogEntry) -> bool:
        return (
            event.is_dagster_event
            and event.get_dagster_event().event_type == DagsterEventType.PIPELINE_FAILURE
            and self.run_retries_enabled
            and not self.event_log_storage.handles_run_events_in_store_event
        )

    def _fail_run_before_its_event(self, event: EventLogEntry) -> None:
        run = self.get_run_by_id(event.run_id)
        if run is None or run.is_finished:
            return
        failure = event.get_dagster_event()
        failed = run.with_status(DagsterRunStatus.FAILURE)
        data = failure.event_specific_data
        reason = data.failure_reason if isinstance(data, JobFailureData) else None
        will_retry = auto_reexecution_should_retry_run(self, failed, reason)
        self.add_run_tags(run.run_id, {WILL_RETRY_TAG: str(will_retry).lower()})
        self.run_storage.handle_run_event(
            run.run_id, failure, dt.datetime.fromtimestamp(event.timestamp, dt.UTC)
        )
