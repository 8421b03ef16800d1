"""The one place that touches pyiceberg internals: cache `Transaction.table_metadata`.

pyiceberg 0.12.0 recomputes `Transaction.table_metadata` on every read by replaying the staged
updates and deep-copying the whole table metadata (snapshots included), and its overwrite reads
it dozens of times: in a one-day refresh (39 overwrites) that was 1,456 deep copies and 5.1 of
30 profiled seconds, growing with each table's history. The fix is upstream, approved but not
released (apache/iceberg-python#3302, carried on as #3784): cache the result keyed on the
identity of its two inputs, the table's metadata and the tuple of staged updates (a tuple, so
every staged update rebinds it and the cache misses). The metadata models are frozen, so
handing the same object to several readers is what pyiceberg does for `Table.metadata` too.

Applied only to the pyiceberg version it was written and tested against; any other version
keeps its own behaviour (and `test_pyiceberg_fix.py` says so).
"""

from __future__ import annotations

from importlib.metadata import version

from pyiceberg.table import Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.update import update_table_metadata

PATCHED_VERSION = "0.12.0"


def _table_metadata(self: Transaction) -> TableMetadata:
    base, updates = self._table.metadata, self._updates
    cached = self.__dict__.get("_marts_table_metadata")
    if cached is not None and cached[0] is base and cached[1] is updates:
        return cached[2]
    metadata = update_table_metadata(base, updates)
    self.__dict__["_marts_table_metadata"] = (base, updates, metadata)
    return metadata


def apply() -> bool:
    """Install the cache if this is the pyiceberg it was made for; True when installed."""
    if version("pyiceberg") != PATCHED_VERSION:
        return False
    Transaction.table_metadata = property(_table_metadata)  # type: ignore[method-assign]
    return True


APPLIED = apply()
