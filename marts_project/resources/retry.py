"""Retries with exponential backoff for transient storage errors (S3, catalog contention)."""

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import HTTPClientError
from pyiceberg.exceptions import CommitFailedException, ValidationException
from sqlalchemy.exc import OperationalError

T = TypeVar("T")
log = logging.getLogger(__name__)

ATTEMPTS = 6
# A lost race with another writer (several runs committing to one table at once, on a cluster)
# is not a fault: it is tried longer, up to about a minute, before the step fails.
CONFLICT_ATTEMPTS = 15
BASE_DELAY_SECONDS = 0.2
MAX_DELAY_SECONDS = 5.0


# S3 error codes and connection failures that a later attempt can get past.
_TRANSIENT_TEXT = (
    "slowdown",
    "reduce your request rate",
    "internalerror",
    "serviceunavailable",
    "requesttimeout",
    "reached max retries",
    "503",
    "500",
    "timeout",
    "timed out",
    "reset",
    "throttl",
    "server disconnected",
    "connection was closed",
    "connection closed",
    "could not connect",
)


_STORAGE_CLIENTS = {"botocore", "aiobotocore", "aiohttp", "s3fs", "urllib3"}


def is_transient(exc: BaseException) -> bool:
    """Errors a retry can cure: lost commit races, a locked catalog, S3 throttling, 5xx and
    dropped connections (looked for along the whole exception chain, as s3fs re-wraps them)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_transient_one(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _lost_sequence_race(exc: BaseException) -> bool:
    """pyiceberg's refusal of a commit to a branch whose new snapshot was numbered from table
    metadata read before another writer's commit (its sequence number is taken): nothing was
    committed, and a commit to a branch carries no requirement that would have said so with a
    CommitFailedException. pyiceberg 0.12 raises a plain ValueError, known by its message."""
    return isinstance(exc, ValueError) and str(exc).startswith(
        "Cannot add snapshot with sequence number"
    )


def is_conflict(exc: BaseException) -> bool:
    """A lost commit race or a locked catalog, anywhere along the exception chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, CommitFailedException | ValidationException):
            return True
        if type(current).__name__ == "MainMovedError" or _lost_sequence_race(current):
            return True
        if isinstance(current, OperationalError) and "locked" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False


def _is_transient_one(exc: BaseException) -> bool:
    if isinstance(exc, CommitFailedException) or type(exc).__name__ == "MainMovedError":
        return True
    if _lost_sequence_race(exc):
        return True
    if isinstance(exc, ValidationException):
        # Another writer replaced the same rows first. Our writes replace whole days, so
        # redoing ours on top of theirs serializes the two: the last one wins, whole.
        return True
    if isinstance(exc, OperationalError):  # SQLite "database is locked", PostgreSQL restarts
        text = str(exc).lower()
        return "locked" in text or "could not connect" in text or "server closed" in text
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, (FileNotFoundError, PermissionError)):
        return False
    if isinstance(exc, HTTPClientError):  # connection closed, reset, read timeout
        return True
    if isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in _STORAGE_CLIENTS:
        text = str(exc).lower()
        return any(s in text for s in _TRANSIENT_TEXT)
    return False


def with_retries(
    action: Callable[[], T],
    what: str,
    landed: Callable[[], bool] | None = None,
    attempts: int = ATTEMPTS,
) -> T | None:
    """Run `action`, retrying transient failures with jittered exponential backoff.

    `landed` is asked after a failed write before trying again: a commit can succeed on the
    server and still fail on the way back, and writing it twice would duplicate data. If it
    says the write landed, None is returned instead of writing again. The question itself may
    meet the same transient error (a catalog still locked); it is then asked again, and the
    write is never retried before it has an answer.
    """
    failures = 0

    def pause(exc: Exception) -> None:
        nonlocal failures
        failures += 1
        limit = max(attempts, CONFLICT_ATTEMPTS) if is_conflict(exc) else attempts
        if not is_transient(exc) or failures >= limit:
            raise exc
        delay = min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2 ** (failures - 1))
        delay *= random.uniform(0.5, 1.5)
        log.warning(
            f"{what}: transient {type(exc).__name__} ({exc}); retry {failures} in {delay:.1f}s"
        )
        time.sleep(delay)

    while True:
        try:
            return action()
        except Exception as exc:
            pause(exc)
        while landed is not None:
            try:
                if landed():
                    log.warning(f"{what}: the earlier attempt did commit; not writing again")
                    return None
                break
            except Exception as exc:
                pause(exc)
