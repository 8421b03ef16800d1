"""The audit trail: who did what by hand, when, and how it ended (backfills, reprocessing,
rollbacks, maintenance, runs launched from the UI).

Append-only by construction: every entry is its own file (an object on S3) under the trail's
root, created once under a new name and never rewritten (locally it is created exclusively
and made read-only). Each entry carries the digest of the one before it, so an entry edited
or removed afterwards is found by `marts audit --verify`. Where the storage enforces it (an
S3 prefix the pipeline may only put to, Object Lock), the pipeline cannot rewrite it at all.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import hashlib
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import fsspec

from marts_project.resources.files import StorageAccess


def actor(environ: Mapping[str, str] | None = None) -> str:
    """Who is acting: `MARTS_USER` (set by whoever deploys the CLI for people), else the
    operating-system user."""
    env = os.environ if environ is None else environ
    if who := env.get("MARTS_USER", "").strip():
        return who
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class AuditEntry:
    """One manual action and its result (`ok`, or `failed: <why>`)."""

    at: str  # ISO timestamp, UTC
    who: str
    action: str
    target: str
    params: dict[str, Any] = field(default_factory=dict)
    result: str = "ok"
    previous: str | None = None  # digest of the entry appended before this one
    digest: str = ""

    def computed_digest(self) -> str:
        body = {k: v for k, v in asdict(self).items() if k != "digest"}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class AuditTrail(StorageAccess):
    """The trail under `root` (a folder or `s3://bucket/prefix`)."""

    root: str

    def _fs(self) -> fsspec.AbstractFileSystem:
        return self.filesystem_of(self.root)

    def _names(self) -> list[str]:
        fs, root = self._fs(), self.root.rstrip("/")
        if not fs.exists(root):
            return []
        return sorted(p for p in fs.ls(root, detail=False) if p.endswith(".json"))

    def entries(self) -> list[AuditEntry]:
        """Every entry, oldest first."""
        fs = self._fs()
        return [AuditEntry(**json.loads(fs.cat_file(name))) for name in self._names()]

    def append(
        self,
        action: str,
        target: str,
        params: Mapping[str, Any] | None = None,
        result: str = "ok",
        who: str | None = None,
    ) -> AuditEntry:
        """Record one action under a new name; never replaces an entry."""
        now = dt.datetime.now(dt.UTC)
        names = self._names()
        previous = None
        if names:
            previous = json.loads(self._fs().cat_file(names[-1]))["digest"]
        entry = AuditEntry(
            at=now.isoformat(),
            who=who or actor(),
            action=action,
            target=target,
            params={k: str(v) for k, v in (params or {}).items()},
            result=result,
            previous=previous,
        )
        entry = AuditEntry(**{**asdict(entry), "digest": entry.computed_digest()})
        name = f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.json"
        payload = json.dumps(asdict(entry), sort_keys=True).encode()
        if self.root.startswith("s3://"):
            self._fs().pipe_file(f"{self.root.rstrip('/')}/{name}", payload)
        else:
            os.makedirs(self.root, exist_ok=True)
            path = os.path.join(self.root, name)
            with open(path, "xb") as handle:  # exclusive: an existing entry is never replaced
                handle.write(payload)
            os.chmod(path, 0o444)
        return entry

    def verify(self) -> list[str]:
        """What is wrong with the trail: entries edited since written, or missing from the
        chain (an entry's predecessor is gone). Empty when the trail is intact."""
        problems = []
        entries = self.entries()
        digests = {e.digest for e in entries}
        for i, entry in enumerate(entries):
            if entry.computed_digest() != entry.digest:
                problems.append(f"{entry.at} {entry.action} {entry.target}: edited after written")
            if i and entry.previous not in digests:
                problems.append(f"{entry.at} {entry.action}: the entry before it is missing")
        return problems


@contextlib.contextmanager
def audited(
    trail: AuditTrail, action: str, target: str, params: Mapping[str, Any] | None = None
) -> Iterator[dict[str, str]]:
    """Record `action` when it ends: `ok`, `failed: <error>` if it raised (and re-raise), or
    what the body set as `outcome["result"]` (e.g. a backfill whose runs failed)."""
    outcome: dict[str, str] = {}
    try:
        yield outcome
    except BaseException as exc:
        trail.append(
            action,
            target,
            params,
            f"failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
        )
        raise
    trail.append(action, target, params, outcome.get("result", "ok"))
