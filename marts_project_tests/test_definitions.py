"""Definitions load the way `dagster dev` loads them, and the CLI refuses bad input clearly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from marts_project.cli import main
from marts_project.settings import REPO_ROOT


def test_definitions_load_through_workspace_yaml(tmp_path):
    env = {**os.environ, "MARTS_DATA_DIR": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "marts_project" in result.stdout + result.stderr


def test_asset_graph_has_the_marketing_path():
    from marts_project.definitions import defs

    graph = defs().resolve_asset_graph()
    mart = graph.get(
        next(k for k in graph.get_all_asset_keys() if k.path[-1] == "mkt_campaign_performance_fact")
    )
    assert {k.to_user_string() for k in mart.parent_keys} == {"intermediate/int_mkt_campaign_daily"}
    upstream = {k.to_user_string() for k in graph.upstream_key_iterator(mart.key)}
    assert {"raw/raw_mkt_ad_stats", "raw/raw_mkt_crm_leads", "raw/raw_mkt_campaigns"} <= upstream
    assert mart.owners == ["team:marketing-analytics"]


def test_importing_the_code_location_reads_no_settings_and_writes_nothing(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "MARTS_DATA_DIR": str(data), "MARTS_WAREHOUSE": "s3://nowhere/wh"}
    env.pop("AWS_ACCESS_KEY_ID", None)  # settings would refuse S3 without credentials
    probe = "import marts_project.definitions, marts_project.cli, bench.run; print('imported')"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert not data.exists()  # nothing created until Dagster loads the definitions


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["materialize", "--start", "2026-13-01"], "is not a date"),
        (["materialize", "--start", "2026-10-05", "--end", "2026-10-01"], "reversed"),
        (["materialize", "--start", "1999-01-01"], "is not a daily partition"),
    ],
)
def test_cli_refuses_bad_dates_with_a_clear_message(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MARTS_DATA_DIR", str(tmp_path))
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "warehouse").exists()


def test_cli_refuses_to_run_on_s3_without_credentials(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MARTS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MARTS_WAREHOUSE", "s3://lake/warehouse")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "")
    assert main(["materialize", "--start", "2026-10-05"]) == 2
    err = capsys.readouterr().err
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set" in err
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing written, not even Dagster's home


def test_a_backfill_of_a_mart_alone_is_sized_by_the_sources_it_is_computed_from():
    """A backfill of the fact alone rebuilds no raw table (nothing to refuse for a missing
    file) but reads its inputs' days, so the sources under it size its runs."""
    from marts_project.commands import backfill_sources, selected
    from marts_project.definitions import defs

    built = defs()
    fact = selected(built, ("mkt_campaign_performance_fact",))
    assert backfill_sources(built, fact) == []
    sizing = backfill_sources(built, fact, upstream=True)
    assert sorted(sizing) == ["mkt_ad_stats", "mkt_campaigns", "mkt_crm_leads"]
    raw = selected(built, ("raw_shop_orders",))
    assert backfill_sources(built, raw, upstream=True) == ["shop_orders"]
    assert backfill_sources(built, None) == backfill_sources(built, None, upstream=True)
