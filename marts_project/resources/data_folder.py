"""The embedded deployment's data folder: private to its user whatever the umask, and never
used from a copy whose Iceberg catalog still names the original's files."""

from __future__ import annotations

import contextlib
import grp
import os
import sqlite3
from pathlib import Path

from marts_project.settings import Settings

# What the embedded deployment keeps directly under the data folder besides `serving/`.
_PRIVATE_FOLDERS = ("warehouse", "landing", "audit", "dagster_home", "report")


def make_private(settings: Settings) -> Path:
    """Create the data folder readable by its owner only, whatever the umask; an existing one
    of ours is tightened (someone else's is theirs to set).

    - `MARTS_DATA_GROUP`: the folder is 0750 for that group, which may read everything in it.
    - Else, with `MARTS_SERVING_GROUPS`: the folder is 0711 (others may pass through to the
      serving folder their group may read, and list nothing); everything else in it is made
      0700/0600, the folders before anything is written in them.
    - Else 0700: nothing in it can be reached by another user, whatever its own mode.
    """
    root = settings.data_dir
    root.mkdir(parents=True, exist_ok=True)
    if root.stat().st_uid != os.geteuid():
        return root
    if settings.data_group:
        os.chown(root, -1, grp.getgrnam(settings.data_group).gr_gid)
        root.chmod(0o750)
    elif settings.serving_groups:
        root.chmod(0o711)
        for name in _PRIVATE_FOLDERS:
            (root / name).mkdir(exist_ok=True)
            (root / name).chmod(0o700)
        settings.serving_dir.mkdir(exist_ok=True)
        settings.serving_dir.chmod(0o711)
        catalog = root / "catalog.db"
        os.close(os.open(catalog, os.O_CREAT | os.O_WRONLY, 0o600))  # empty: a new SQLite db
        for entry in root.iterdir():
            if entry.is_file():
                entry.chmod(0o600)
    else:
        root.chmod(0o700)
    return root


def foreign_warehouse(settings: Settings) -> str | None:
    """Where the tables of the local catalog live when that is not this data folder's
    warehouse (the folder was copied or moved: Iceberg metadata holds absolute paths, so a
    write here would change the original's files), else None."""
    catalog = settings.data_dir / "catalog.db"
    local = Settings.local(settings.data_dir)
    if (settings.warehouse, settings.catalog_uri) != (local.warehouse, local.catalog_uri):
        return None
    if not catalog.exists():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)) as con:
        try:
            row = con.execute("select metadata_location from iceberg_tables limit 1").fetchone()
        except sqlite3.Error:  # a new catalog: no table yet
            return None
    if row is None or row[0].startswith(settings.warehouse.rstrip("/") + "/"):
        return None
    return row[0].split("/metadata/")[0].rsplit("/", 2)[0]
