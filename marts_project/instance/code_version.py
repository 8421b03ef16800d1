"""The version of a code location's files, for the long-lived processes that load it once.

Why: the run host and the Celery workers import a code location once and run many runs from
it. A data team edits a mart's SQL, contract or Python and expects the next run to
run the edit, as a run started in a fresh process does. Each of them compares this version
with the one it loaded before it runs anything, and loads the code again when it changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
from pathlib import Path

# Private: where a job's code comes from (a module or a file), as runs carry it.
from dagster._core.code_pointer import CodePointer


def code_files(pointer: CodePointer) -> list[Path] | None:
    """The files of the code location's top-level package (its Python, SQL and contracts);
    None when its code is not a package found from here (a single file, say)."""
    module = getattr(pointer, "module", None)
    spec = importlib.util.find_spec(module.split(".")[0]) if module else None
    folders = list(spec.submodule_search_locations or []) if spec else []
    if not folders:
        return None
    return [p for f in folders for p in Path(f).rglob("*") if "__pycache__" not in p.parts]


def code_version(pointer: CodePointer) -> str | None:
    """Every file's name, size and modification time, hashed (any edit changes it, about 3 ms
    for this project's files); None when the code is not a package (`code_files`)."""
    files = code_files(pointer)
    if files is None:
        return None
    digest = hashlib.sha256()
    for path in sorted(files):
        with contextlib.suppress(OSError):  # gone meanwhile: its absence changes the digest
            stat = path.stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()
