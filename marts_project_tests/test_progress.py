"""The CLI's progress lines (unit tier): one aligned line per step, named as its asset is,
whether it built, failed (then its error's first line under it) or only checked."""

from __future__ import annotations

import io
import logging
from types import SimpleNamespace

import pytest
from dagster import AssetKey, MetadataValue

from marts_project.execution.progress import NAME_WIDTH, StepLines

pytestmark = pytest.mark.quick  # the unit tier: `pytest -m quick`


def _event(kind: str, step: str, data=None) -> logging.LogRecord:
    record = logging.LogRecord("marts", logging.INFO, __file__, 0, "", None, None)
    record.dagster_event = SimpleNamespace(
        event_type_value=kind, step_key=step, event_specific_data=data
    )
    return record


def _built(key: AssetKey, rows: int):
    metadata = {"dagster/row_count": MetadataValue.int(rows)}
    return SimpleNamespace(materialization=SimpleNamespace(asset_key=key, metadata=metadata))


def _checked(key: AssetKey, name: str):
    return SimpleNamespace(asset_key=key, check_name=name)


def _failed(outer: str, inner: str):
    """A step failure as Dagster records it: its error, wrapping the error the step raised."""
    message = f"{inner}: file retyped\nmore lines"
    cause = SimpleNamespace(message=message, cause=None, cls_name=inner)
    error = SimpleNamespace(message=f"{outer} error", cause=cause, cls_name=outer)
    return SimpleNamespace(error=error)


def test_built_failed_and_checks_only_steps_print_aligned_lines_named_by_asset():
    out = io.StringIO()
    lines = StepLines(3, out)
    mart = AssetKey(["marketing", "mkt_campaign_performance_fact"])
    for record in (
        _event("STEP_START", "raw__raw_mkt_ad_stats"),
        _event(
            "ASSET_MATERIALIZATION",
            "raw__raw_mkt_ad_stats",
            _built(AssetKey(["raw", "raw_mkt_ad_stats"]), 1),
        ),
        _event("STEP_SUCCESS", "raw__raw_mkt_ad_stats"),
        _event("STEP_START", "raw__raw_psp_payments"),
        _event("STEP_FAILURE", "raw__raw_psp_payments", _failed("wrapper", "SchemaDriftError")),
        _event("STEP_START", "mkt_campaign_performance_fact_checks"),
        _event(
            "ASSET_CHECK_EVALUATION",
            "mkt_campaign_performance_fact_checks",
            _checked(mart, "partition_freshness"),
        ),
        _event(
            "ASSET_CHECK_EVALUATION",
            "mkt_campaign_performance_fact_checks",
            _checked(mart, "recency"),
        ),
        _event("STEP_SUCCESS", "mkt_campaign_performance_fact_checks"),
    ):
        lines.emit(record)
    printed = out.getvalue().splitlines()
    # a failed step's line is followed by the first line of the error it raised, no more
    assert printed.pop(2).strip() == "SchemaDriftError: file retyped"
    assert "raw.raw_mkt_ad_stats" in printed[0] and "1 row " in printed[0]
    assert "ERROR" in printed[1] and "raw.raw_psp_payments" in printed[1]
    assert "raw__" not in printed[1]
    assert "marketing.mkt_campaign_performance_fact checks" in printed[2]
    assert len({line.rindex(" s") for line in printed}) == 1  # the seconds column lines up
    assert all(len(line) == len(printed[0]) for line in printed)
    assert (
        len("marketing.mkt_campaign_performance_fact checks partition_freshness, recency")
        > NAME_WIDTH
    )
