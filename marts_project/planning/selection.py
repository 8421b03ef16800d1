"""dbt's node selection grammar over the asset graph: `name`, `+name` (and what it reads),
`name+` (and what reads it), `+name+`, `group:<group>`, `domain:<domain>` (its marts),
`layer:<layer>` (the tables of a namespace);
several selectors are a union (`--select a --select b`, or `"a b"` as dbt takes them)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from dagster import AssetKey, AssetSelection

DOMAINS = ("marketing", "finance", "operations")
LAYERS = ("raw", "staging", "intermediate", *DOMAINS)


class SelectionError(ValueError):
    """A selector names nothing, or is not of the grammar."""


def select(asset_graph, selectors: Iterable[str]) -> set[AssetKey]:
    """The asset keys that `selectors` select (all of them when there is none)."""
    keys = set(asset_graph.get_all_asset_keys())
    terms = [term for selector in selectors for term in selector.split()]
    if not terms:
        return keys
    chosen: set[AssetKey] = set()
    for term in terms:
        chosen |= _one(asset_graph, keys, term)
    return chosen


def _one(asset_graph, keys: set[AssetKey], term: str) -> set[AssetKey]:
    upstream, downstream = term.startswith("+"), term.endswith("+")
    body = term.strip("+")
    method, _, value = body.rpartition(":")
    if method == "group":
        groups = {asset_graph.get(k).group_name for k in keys}
        if value not in groups:
            raise SelectionError(_unknown("group", value, groups))
        selection = AssetSelection.groups(value)
    elif method == "domain":
        if value not in DOMAINS:
            raise SelectionError(_unknown("domain", value, DOMAINS))
        selection = AssetSelection.tag("domain", value)  # the domain's marts
    elif method == "layer":
        if value not in LAYERS:
            raise SelectionError(_unknown("layer", value, LAYERS))
        selection = AssetSelection.assets(*[k for k in keys if k.path[0] == value])
    elif method:
        raise SelectionError(
            f"selector {term!r}: unknown method {method!r} (use a name, group:, domain: or "
            "layer:, with + before or after)"
        )
    else:
        selection = AssetSelection.assets(_by_name(keys, value))
    if upstream:
        selection = selection.upstream()
    if downstream:
        selection = selection.downstream()
    return set(selection.resolve(asset_graph))


def _by_name(keys: set[AssetKey], name: str) -> AssetKey:
    """An asset by its table name (`mkt_channel_dim`) or its key (`marketing/mkt_channel_dim`,
    `marketing.mkt_channel_dim`)."""
    for key in keys:
        if name in (key.path[-1], key.to_user_string(), ".".join(key.path)):
            return key
    raise SelectionError(_unknown("table", name, {k.path[-1] for k in keys}))


def _unknown(kind: str, value: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, sorted(known), n=3)
    hint = (
        f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(known))}"
    )
    return f"no {kind} named {value!r}{hint}"
