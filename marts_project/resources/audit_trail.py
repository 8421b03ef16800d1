"""The audit trail: who did what by hand, when, and how it ended (backfills, reprocessing,
rollbacks, regulated reads, runs launched from the UI).

Append-only and tamper-evident:
- every entry is its own file (an object on S3), numbered (`0000000001.json`, ...), created once
  under its number and never rewritten (locally: linked into place exclusively, read-only);
- each entry carries its number and the digest of the entry numbered just before it, so an
  entry edited, removed, inserted, swapped or renumbered breaks the chain at that point;
- the head (the newest number and its digest) is also written, with each append, to the
  catalog database (`anchor`): deleting the newest entries, or rewriting the whole chain and
  re-hashing it, disagrees with the head. Only someone who can rewrite both the trail and the
  catalog database can forge history unseen; on S3 make the trail's prefix put-only (no delete,
  Object Lock) so not even the pipeline can.

An action is recorded when it starts and again when it ends (`audited`), so a killed action is
on record as started and never ended. Who acted is what the caller says (`MARTS_USER`, the OS
user, a run's `marts/user` tag): the trail proves what was recorded and that it was not changed
since, not who was at the keyboard.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import fsspec
import sqlalchemy as sa

from marts_project.resources.files import StorageAccess
from marts_project.settings import acting_user

_NUMBERED = re.compile(r"(?:^|/)(\d{10})\.json$")
STARTED = "started"


@dataclass(frozen=True)
class AuditEntry:
    """One record of a manual action: its start (`started`) or how it ended (`ok`, or
    `failed: <why>`); both halves of one action share `action_id`."""

    at: str  # ISO timestamp, UTC
    who: str
    action: str
    target: str
    params: dict[str, Any] = field(default_factory=dict)
    result: str = "ok"
    previous: str | None = None  # digest of the entry numbered just before this one
    digest: str = ""
    seq: int = 0  # 1, 2, ...; 0 in entries written before the trail was numbered
    action_id: str = ""

    def computed_digest(self) -> str:
        body = {k: v for k, v in asdict(self).items() if k != "digest"}
        if not self.seq:  # entries from before numbering were hashed without these fields
            body = {k: v for k, v in body.items() if k not in ("seq", "action_id")}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class _Stored:
    """One file of the trail: its name, its entry when it parses, else why not."""

    name: str
    entry: AuditEntry | None
    digest: str  # the entry's digest, or of the raw bytes of one that does not parse
    problem: str = ""

    @property
    def base(self) -> str:
        return self.name.rstrip("/").rsplit("/", 1)[-1]

    @property
    def number(self) -> int | None:
        """The number in the file's name; None for an entry from before numbering."""
        found = _NUMBERED.match(self.base)
        return int(found[1]) if found else None


class AuditTrail(StorageAccess):
    """The trail under `root` (a folder or `s3://bucket/prefix`), its head anchored in the
    database at `anchor` (an SQLAlchemy URI: the Iceberg catalog's), when one is given."""

    root: str
    anchor: str | None = None

    def _fs(self) -> fsspec.AbstractFileSystem:
        return self.filesystem_of(self.root)

    def _stored(self) -> list[_Stored]:
        """Every file of the trail: entries from before numbering by name (time), then the
        numbered ones by number. A torn or unreadable file is kept, with why."""
        fs, root = self._fs(), self.root.rstrip("/")
        if not fs.exists(root):
            return []
        names = [p for p in fs.ls(root, detail=False) if p.endswith(".json")]
        names.sort(key=lambda p: (bool(_NUMBERED.search(p)), p))
        stored = []
        for name in names:
            raw = fs.cat_file(name)
            try:
                body = json.loads(raw)
                known = {f.name for f in fields(AuditEntry)}
                entry = AuditEntry(**{k: v for k, v in body.items() if k in known})
                stored.append(_Stored(name, entry, entry.digest))
            except (ValueError, TypeError) as exc:
                reason = "empty" if not raw else f"not an entry ({type(exc).__name__})"
                stored.append(_Stored(name, None, hashlib.sha256(raw).hexdigest(), reason))
        return stored

    def entries(self) -> list[AuditEntry]:
        """Every readable entry, oldest first (`verify` reports the unreadable ones)."""
        return [s.entry for s in self._stored() if s.entry is not None]

    def actions(self) -> list[AuditEntry]:
        """One record per action, oldest first: how it ended, or its start when no end was
        ever recorded (`result` then says so: the process was killed, or is still running)."""
        entries = self.entries()
        ended = {e.action_id for e in entries if e.action_id and e.result != STARTED}
        listed = []
        for entry in entries:
            if entry.result == STARTED:
                if entry.action_id not in ended:
                    listed.append(_replace(entry, result="started, no end recorded (killed?)"))
                continue
            listed.append(entry)
        return listed

    def append(
        self,
        action: str,
        target: str,
        params: Mapping[str, Any] | None = None,
        result: str = "ok",
        who: str | None = None,
        action_id: str = "",
    ) -> AuditEntry:
        """Record one entry under the next number; never replaces an entry (a writer that
        loses the race for a number takes the next one), then moves the head."""
        for _ in range(100):
            stored = self._stored()
            seq = (stored[-1].number or 0) + 1 if stored else 1
            entry = AuditEntry(
                at=dt.datetime.now(dt.UTC).isoformat(),
                who=who or acting_user(),
                action=action,
                target=target,
                params={k: str(v) for k, v in (params or {}).items()},
                result=result,
                previous=stored[-1].digest if stored else None,
                seq=seq,
                action_id=action_id,
            )
            entry = _replace(entry, digest=entry.computed_digest())
            if self._create(f"{seq:010d}.json", json.dumps(asdict(entry), sort_keys=True)):
                self._move_head(entry)
                return entry
        raise RuntimeError(f"audit trail {self.root}: no free entry number after 100 tries")

    def _create(self, name: str, text: str) -> bool:
        """Create `name` with `text` unless it exists; False when another writer has it."""
        if self.root.startswith("s3://"):
            # S3 has no exclusive create through s3fs: check, then put (a simultaneous writer
            # can take the same number; `verify` then reports the broken chain).
            path = f"{self.root.rstrip('/')}/{name}"
            if self._fs().exists(path):
                return False
            self._fs().pipe_file(path, text.encode())
            return True
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        scratch = os.path.join(self.root, f".{uuid.uuid4().hex}.tmp")
        with open(scratch, "x") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(scratch, 0o444)
        try:
            os.link(scratch, os.path.join(self.root, name))  # atomic and exclusive: never torn
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(scratch)

    def _engine(self) -> sa.Engine:
        return sa.create_engine(self.anchor, poolclass=sa.pool.NullPool)

    def _move_head(self, entry: AuditEntry) -> None:
        """The head record of this trail in the anchor database: only ever moves forward."""
        if not self.anchor:
            return
        with self._engine().begin() as con:
            HEADS.create(con, checkfirst=True)
            moved = con.execute(
                HEADS.update()
                .where(HEADS.c.trail == self.root, HEADS.c.seq < entry.seq)
                .values(seq=entry.seq, digest=entry.digest)
            ).rowcount
            if (
                not moved
                and not con.execute(
                    sa.select(HEADS.c.seq).where(HEADS.c.trail == self.root)
                ).first()
            ):
                con.execute(
                    HEADS.insert().values(trail=self.root, seq=entry.seq, digest=entry.digest)
                )

    def head(self) -> tuple[int, str] | None:
        """The anchored head (number, digest), or None when none was ever written."""
        if not self.anchor:
            return None
        with self._engine().begin() as con:
            if not sa.inspect(con).has_table(HEADS.name):
                return None
            row = con.execute(
                sa.select(HEADS.c.seq, HEADS.c.digest).where(HEADS.c.trail == self.root)
            ).first()
        return (row.seq, row.digest) if row else None

    def verify(self) -> list[str]:
        """What is wrong with the trail, one line each: an entry edited, torn or unreadable,
        removed, inserted, reordered or renumbered, or a trail that disagrees with its head.
        Empty when the trail is intact."""
        problems: list[str] = []
        stored = self._stored()
        expected_seq, previous = 1, None
        for position, item in enumerate(stored):
            name, seq, entry = item.base, item.number, item.entry
            if entry is None:
                problems.append(f"{name}: torn or unreadable entry ({item.problem})")
            elif entry.computed_digest() != entry.digest:
                problems.append(f"{name}: edited after written ({entry.action} {entry.target})")
            if seq is not None:
                if seq != expected_seq:
                    problems.append(
                        f"{name}: entries {expected_seq}..{seq - 1} are missing (deleted)"
                        if seq > expected_seq
                        else f"{name}: numbered {seq} where {expected_seq} was expected"
                    )
                if entry is not None and entry.seq != seq:
                    problems.append(f"{name}: holds entry {entry.seq} (renamed or swapped)")
                expected_seq = seq + 1
            if entry is not None and position and entry.previous != previous:
                problems.append(
                    f"{name}: does not follow the entry before it (inserted, reordered or "
                    "the one before it was removed)"
                )
            previous = item.digest
        head = self.head()
        last = stored[-1] if stored else None
        last_seq = (last.number or 0) if last else 0
        if head is None and last_seq and self.anchor:
            problems.append("no head record in the catalog database: the anchor was removed")
        elif head is not None and (head[0], head[1]) != (last_seq, last.digest if last else None):
            problems.append(
                f"the trail ends at entry {last_seq} but its head (catalog database) is entry "
                f"{head[0]}: entries were removed, or the chain was rewritten"
            )
        return problems


HEADS = sa.Table(
    "marts_audit_head",
    sa.MetaData(),
    sa.Column("trail", sa.String(1024), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
)


def _replace(entry: AuditEntry, **changes: Any) -> AuditEntry:
    return AuditEntry(**{**asdict(entry), **changes})


@contextlib.contextmanager
def audited(
    trail: AuditTrail, action: str, target: str, params: Mapping[str, Any] | None = None
) -> Iterator[dict[str, str]]:
    """Record `action` when it starts, and when it ends: `ok`, `failed: <error>` if it raised
    (and re-raise), or what the body set as `outcome["result"]` (e.g. a backfill whose runs
    failed). A killed process leaves the start on record."""
    action_id = uuid.uuid4().hex[:16]
    trail.append(action, target, params, STARTED, action_id=action_id)
    outcome: dict[str, str] = {}
    try:
        yield outcome
    except BaseException as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        trail.append(action, target, params, f"failed: {why}", action_id=action_id)
        raise
    trail.append(action, target, params, outcome.get("result", "ok"), action_id=action_id)
