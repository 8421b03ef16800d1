"""The landing zone: where source systems drop one file per source and day (local or S3)."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

import fsspec

from marts_project.resources.files import StorageAccess
from marts_project.resources.files import modified_at as file_modified_at
from marts_project.resources.retry import with_retries

_SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class HostilePathError(ValueError):
    """A source name or day that would address a file outside the landing zone."""


class LandingZone(StorageAccess):
    """Files at `<root>/<source>/<YYYY-MM-DD>.csv`, on a local folder or `s3://bucket/prefix`.

    Paths are built only from a validated source name and a real date, and on a local folder
    a file (or folder) that is a link resolving outside `root` is refused, so no caller and no
    file dropped in the zone can make it read or write outside `root`.
    """

    root: str

    def filesystem(self) -> fsspec.AbstractFileSystem:
        return self.filesystem_of(self.root)

    @staticmethod
    def key(source: str, day: dt.date) -> str:
        """The file's name relative to the landing root: `<source>/<YYYY-MM-DD>.csv`."""
        if not isinstance(source, str) or not _SOURCE_NAME.match(source):
            raise HostilePathError(f"invalid landing source name {source!r}")
        if not isinstance(day, dt.date):
            raise HostilePathError(f"landing day must be a date, got {day!r}")
        return f"{source}/{day.isoformat()}.csv"

    def path(self, source: str, day: dt.date) -> str:
        return f"{self.root.rstrip('/')}/{self.key(source, day)}"

    def _inside(self, source: str, day: dt.date) -> str:
        """The file's path, after checking that on a local folder it resolves inside the root
        (a symbolic link to a file elsewhere is refused, not followed)."""
        path = self.path(source, day)
        if self.root.startswith("s3://"):
            return path
        root = os.path.realpath(self.root)
        if os.path.commonpath([root, os.path.realpath(path)]) != root:
            raise HostilePathError(
                f"{self.key(source, day)}: a link to a file outside the landing zone; refused "
                "(replace it with the file itself)"
            )
        return path

    def open_file(self, source: str, day: dt.date) -> BinaryIO:
        """The file for reading as a stream (a large file is never read whole)."""
        path = self._inside(source, day)
        return with_retries(lambda: self.filesystem().open(path, "rb"), f"open {path}")

    def read_bytes(self, source: str, day: dt.date) -> bytes:
        path = self._inside(source, day)

        def read() -> bytes:
            with self.filesystem().open(path, "rb") as handle:
                return handle.read()

        return with_retries(read, f"read {path}")

    def snapshot(self) -> LandingSnapshot:
        """Every file under the root as one listing finds it (a request per thousand files on
        S3): what a check or report compares many files against, instead of a request each."""
        listing = self._listing()
        return LandingSnapshot(
            {key: (_fingerprint(info, at), at) for key, (info, at) in listing.items()},
            {key: int(info.get("size") or 0) for key, (info, _) in listing.items()},
        )

    def versions(self) -> dict[str, tuple[str, dt.datetime]]:
        """Every file's version and arrival time (`LandingSnapshot.versions`)."""
        return self.snapshot().versions()

    def _listing(self) -> dict[str, tuple[dict, dt.datetime | None]]:
        fs = self.filesystem()
        root = self.root.rstrip("/")
        # no `exists` first: on S3 it is a HEAD of the prefix itself, which an identity that
        # may only read `landing/*` is refused; a missing root lists nothing
        listing = with_retries(lambda: fs.find(root, detail=True), f"list {root}")
        prefix = root.removeprefix("s3://") + "/"
        return {
            path.removeprefix("s3://").removeprefix(prefix): (info, file_modified_at(info))
            for path, info in listing.items()
        }

    def fingerprints(self) -> dict[str, str]:
        """Every file's fingerprint (`LandingSnapshot.fingerprints`)."""
        return self.snapshot().fingerprints()

    def version(self, source: str, day: dt.date) -> tuple[str, dt.datetime | None] | None:
        """One file's version (as `fingerprints` gives it) and when it was last written, None
        if it is not there: what a raw partition records of each file it read, taken before
        reading it, so a file rewritten while it was read shows as changed afterwards."""
        fs, path = self.filesystem(), self.path(source, day)
        try:  # one request: `exists` first was a second one on S3
            info = with_retries(lambda: fs.info(path), f"stat {path}")
        except FileNotFoundError:
            return None
        modified = file_modified_at(info)
        return _fingerprint(info, modified), modified

    def write_bytes(self, source: str, day: dt.date, payload: bytes) -> str:
        path = self.path(source, day)
        fs = self.filesystem()
        if not self.root.startswith("s3://"):
            fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(path, "wb") as handle:
            handle.write(payload)
        return path


@dataclass(frozen=True)
class LandingSnapshot:
    """The landing zone's files as one listing found them: {key relative to the root: (its
    fingerprint, when it was last written)}, and their sizes in bytes."""

    files: Mapping[str, tuple[str, dt.datetime | None]]
    sizes: Mapping[str, int] = field(default_factory=dict)

    def fingerprints(self) -> dict[str, str]:
        """{key: size/mtime/etag fingerprint}: a rewritten file gets a new one, so
        restatements of past days are noticed."""
        return {key: version for key, (version, _) in self.files.items()}

    def versions(self) -> dict[str, tuple[str, dt.datetime]]:
        """{key: (fingerprint, when it was last written)}: the versions on offer, with their
        arrival times (a file without a modification time has none)."""
        return {key: (version, at) for key, (version, at) in self.files.items() if at is not None}

    def day_bytes(self, sources: Collection[str]) -> dict[dt.date, int]:
        """{day: bytes of the files of `sources` for that day}: what a run of those days
        reads, which is what sizes a backfill's chunks."""
        total: dict[dt.date, int] = {}
        for key, size in self.sizes.items():
            found = parse_key(key)
            if found and found[0] in sources:
                total[found[1]] = total.get(found[1], 0) + size
        return total

    def modified_at(self, source: str, day: dt.date) -> dt.datetime | None:
        """When the file of `source` for `day` was last (re)written, None if it is not there."""
        found = self.files.get(LandingZone.key(source, day))
        return found[1] if found else None


def _fingerprint(info: dict, modified: dt.datetime | None) -> str:
    """Size, modification time and, on S3, the ETag (a content hash); locally the inode and
    change time, which no rewrite can keep (unlike the modification time, which `touch -d` or
    a copy can restore)."""
    etag = str(info.get("ETag", "")).strip('"')
    local = f"{info.get('ino', '')}:{info.get('created', '')}" if not etag else ""
    return f"{info.get('size')}:{modified or ''}:{etag}{local}"


def same_size_and_time(recorded: str, now: str) -> bool:
    """Two local versions of one file (`size:modified:inode:ctime`) with the same size and
    modification time: what a copy or move (`cp -a`, `rsync -a`, `mv`) keeps of a file."""
    return recorded.rsplit(":", 2)[0] == now.rsplit(":", 2)[0]


_FILE_NAME = re.compile(r"^(?P<source>[a-z][a-z0-9_]{0,62})/(?P<day>\d{4}-\d{2}-\d{2})\.csv$")


def parse_key(key: str) -> tuple[str, dt.date] | None:
    """(source, day) of a landing file key `<source>/<YYYY-MM-DD>.csv`, or None if it is not one."""
    match = _FILE_NAME.match(key)
    if not match:
        return None
    try:
        return match["source"], dt.date.fromisoformat(match["day"])
    except ValueError:
        return None
