"""The cluster's and docker deployment's event log: Dagster's PostgreSQL storage, asking
whether a table exists once per process instead of once per materialization.

Why: Dagster writes a materialization's indexed tags (its data and code versions) after asking
the database whether their table exists, on a second connection while the event's index
transaction holds the first. A long-lived process keeps one connection plus overflow
(`marts_instance.keep_connections`, Dagster's own pooling for its webserver), so that second
connection was opened and closed again for every materialization a Celery worker stored:
20 ms an event against 6 ms asking once (200 materializations each way, on this machine's
PostgreSQL over loopback; a remote server's connection costs more).

Public API: `PostgresEventLogStorage`, its `has_table` and the config helpers of
`dagster_postgres.utils` are dagster-postgres's (its `from_config_value` builds its own class,
not a subclass, so this one builds itself the same way); `config.py` names this class next to
the run and schedule storages dagster-postgres provides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dagster_postgres import PostgresEventLogStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

from marts_project.instance.event_log import RemembersTables

if TYPE_CHECKING:
    # Private: the type Dagster passes to `from_config_value`, exported nowhere public; for
    # type checking only, never imported at run time.
    from dagster._serdes import ConfigurableClassData


class TableAwarePostgresEventLogStorage(RemembersTables, PostgresEventLogStorage):
    """Dagster's PostgreSQL event log that remembers which of its tables exist."""

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> TableAwarePostgresEventLogStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )
