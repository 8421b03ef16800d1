"""The audit trail: every manual action on record (who, what, when, result), append-only and
tamper-evident, from the CLI and from runs launched in the UI."""

from __future__ import annotations

import json
import os

import boto3
import pytest
from dagster import build_sensor_context

from marts_project.audit import AuditTrail, audited
from marts_project.automation.audit_sensor import build_audit_sensor
from marts_project.cli import main
from marts_project.runs import run_job
from marts_project_tests.conftest import DAY, Lakehouse


def test_entries_are_appended_never_rewritten_and_chained(tmp_path):
    trail = AuditTrail(root=str(tmp_path / "audit"))
    first = trail.append("backfill", "2026-10-01..2026-10-07", {"chunk_days": 7}, who="ana")
    second = trail.append("rollback", "finance.fin_revenue_daily_fact", who="ben")
    assert [e.action for e in trail.entries()] == ["backfill", "rollback"]
    assert second.previous == first.digest and trail.verify() == []
    for name in os.listdir(tmp_path / "audit"):
        assert not os.access(tmp_path / "audit" / name, os.W_OK) or os.geteuid() == 0
        assert oct(os.stat(tmp_path / "audit" / name).st_mode)[-3:] == "444"


def test_an_edited_or_removed_entry_is_found(tmp_path):
    trail = AuditTrail(root=str(tmp_path / "audit"))
    for action in ("backfill", "reprocess", "rollback"):
        trail.append(action, "x", who="ana")
    names = sorted(os.listdir(tmp_path / "audit"))
    edited = tmp_path / "audit" / names[0]
    body = json.loads(edited.read_text())
    os.chmod(edited, 0o644)
    edited.write_text(json.dumps({**body, "who": "mallory"}))
    (tmp_path / "audit" / names[1]).unlink()
    problems = trail.verify()
    assert any("edited after written" in p for p in problems)
    assert any("the entry before it is missing" in p for p in problems)


def test_an_action_that_fails_is_recorded_with_why(tmp_path):
    trail = AuditTrail(root=str(tmp_path / "audit"))
    with pytest.raises(LookupError), audited(trail, "rollback", "m", {"snapshot_id": 1}):
        raise LookupError("snapshot 1 was never published on main")
    (entry,) = trail.entries()
    assert entry.result == "failed: snapshot 1 was never published on main"


def test_the_trail_lives_on_s3_too(s3_endpoint, monkeypatch):
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket="audit-trail")
    trail = AuditTrail(
        root="s3://audit-trail/audit",
        s3_endpoint=s3_endpoint,
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
    )
    trail.append("backfill", "a", who="ana")
    trail.append("backfill", "b", who="ana")
    assert [e.target for e in trail.entries()] == ["a", "b"] and trail.verify() == []


def test_cli_actions_are_recorded_with_who_and_how_they_ended(
    lakehouse: Lakehouse, monkeypatch, capsys
):
    monkeypatch.setenv("MARTS_DATA_DIR", str(lakehouse.settings.data_dir))
    monkeypatch.setenv("MARTS_USER", "ana.ruiz")
    lakehouse.seed(DAY, 1)
    assert main(["backfill", "--start", str(DAY)]) == 0
    assert main(["rollback", "fin_revenue_daily_fact", "--to", "12345"]) == 2  # refused
    capsys.readouterr()
    assert main(["audit", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [(e["who"], e["action"], e["result"][:6]) for e in entries] == [
        ("ana.ruiz", "backfill", "ok"),
        ("ana.ruiz", "rollback", "failed"),
    ]
    assert entries[0]["target"] == f"{DAY}..{DAY}"
    assert main(["audit", "--verify"]) == 0
    assert "2 entries, intact" in capsys.readouterr().out


def test_a_run_launched_by_hand_in_the_ui_is_recorded_once_and_cli_runs_are_not(lakehouse):
    lakehouse.seed(DAY, 1)
    job = lakehouse.defs.resolve_job_def("daily_assets_job")
    manual = job.execute_in_process(
        instance=lakehouse.instance,
        partition_key=DAY.isoformat(),
        tags={"marts/user": "dora.nagy"},
        raise_on_error=False,
    )
    run_job(lakehouse.defs, lakehouse.instance, "daily_assets_job", (str(DAY), str(DAY)))
    trail = AuditTrail(root=lakehouse.settings.audit_root)
    sensor, cursor = build_audit_sensor(), None
    for _ in range(2):  # a second tick finds nothing new
        with build_sensor_context(
            instance=lakehouse.instance, resources={"audit": trail}, cursor=cursor
        ) as context:
            sensor(context)
            cursor = context.cursor
    (entry,) = trail.entries()
    assert (entry.who, entry.action, entry.result) == ("dora.nagy", "ui_run", "ok")
    assert entry.params["run_id"] == manual.run_id and cursor
