"""The one type vocabulary of the landing contracts (`raw/sources.yml`) and the mart contracts:
each name's Arrow type (what tables hold) and DuckDB type (what landing values are cast to)."""

from __future__ import annotations

import re
from typing import Annotated

import pyarrow as pa
from pydantic import AfterValidator

_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
_ARROW = {
    "string": pa.string(),
    "date": pa.date32(),
    "bigint": pa.int64(),
    "integer": pa.int32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "timestamptz": pa.timestamp("us", tz="UTC"),  # an instant, always read and kept as UTC
}
_DUCKDB = {"string": "varchar"}  # every other name is DuckDB's own


def arrow_type(name: str) -> pa.DataType:
    """Arrow type of a type name (`date`, `bigint`, `decimal(18,2)`, ...)."""
    if match := _DECIMAL.match(name):
        return pa.decimal128(int(match[1]), int(match[2]))
    try:
        return _ARROW[name]
    except KeyError:
        raise ValueError(
            f"unknown type {name!r}; use one of {sorted(_ARROW)} or decimal(p,s)"
        ) from None


def duckdb_type(name: str) -> str:
    """The DuckDB type a landing value of type `name` is cast to."""
    arrow_type(name)
    return _DUCKDB.get(name, name)


def _known(name: str) -> str:
    arrow_type(name)
    return name


# A field of a contract model holding a type name: validated when the contract is read.
TypeName = Annotated[str, AfterValidator(_known)]
