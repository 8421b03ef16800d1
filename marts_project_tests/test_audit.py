"""The audit trail: every manual action on record (who, what, when, result), append-only and
tamper-evident, from the CLI and from runs launched in the UI."""

from __future__ import annotations

import json
import os

import boto3
import pytest
from dagster import build_sensor_context

from marts_project.automation.audit_sensor import (
    ANONYMOUS,
    UNNAMED,
    build_audit_sensor,
    launcher_of,
)
from marts_project.cli import main
from marts_project.execution.jobs import daily_assets_job
from marts_project.execution.runs import run_job
from marts_project.resources.audit_trail import AuditEntry, AuditTrail, audited
from marts_project_tests.conftest import DAY, Lakehouse


def anchored(tmp_path) -> AuditTrail:
    """A local trail with its head in a SQLite database beside it, as a deployment's catalog."""
    return AuditTrail(root=str(tmp_path / "audit"), anchor=f"sqlite:///{tmp_path / 'catalog.db'}")


def test_entries_are_appended_never_rewritten_and_chained(tmp_path):
    trail = anchored(tmp_path)
    first = trail.append("backfill", "2026-10-01..2026-10-07", {"chunk_days": 7}, who="ana")
    second = trail.append("rollback", "finance.fin_revenue_daily_fact", who="ben")
    assert [e.action for e in trail.entries()] == ["backfill", "rollback"]
    assert second.previous == first.digest and trail.verify() == []
    for name in os.listdir(tmp_path / "audit"):
        assert not os.access(tmp_path / "audit" / name, os.W_OK) or os.geteuid() == 0
        assert oct(os.stat(tmp_path / "audit" / name).st_mode)[-3:] == "444"


def _trail_of(tmp_path, count: int = 8) -> tuple[AuditTrail, list]:
    trail = anchored(tmp_path)
    for i in range(count):
        trail.append("backfill", f"day {i}", who="ana")
    return trail, sorted((tmp_path / "audit").iterdir())


def _rewrite(path, body: dict) -> None:
    if path.exists():
        os.chmod(path, 0o644)
    path.write_text(json.dumps(body, sort_keys=True))


def _rehashed(body: dict, previous: str | None) -> dict:
    entry = AuditEntry(**{**body, "previous": previous, "digest": ""})
    return {**body, "previous": previous, "digest": entry.computed_digest()}


def _delete_newest(files, n):
    for path in files[-n:]:
        path.unlink()


def _insert_forged(files):
    older = json.loads(files[2].read_text())
    forged = {**older, "seq": 9, "who": "mallory", "target": "forged", "previous": older["digest"]}
    _rewrite(files[0].parent / "0000000009.json", _rehashed(forged, older["digest"]))


def _swap(files):
    a, b = files[3].read_text(), files[4].read_text()
    _rewrite(files[3], json.loads(b))
    _rewrite(files[4], json.loads(a))


def _edit_and_rehash_the_rest(files):
    previous = json.loads(files[2].read_text())["digest"]
    for i, path in enumerate(files[3:]):
        body = json.loads(path.read_text())
        if i == 0:
            body["who"] = "mallory"
        body = _rehashed(body, previous)
        _rewrite(path, body)
        previous = body["digest"]


TAMPERING = {
    "the newest entry deleted": lambda files: _delete_newest(files, 1),
    "the last 5 deleted": lambda files: _delete_newest(files, 5),
    "the first deleted": lambda files: files[0].unlink(),
    "all deleted": lambda files: _delete_newest(files, len(files)),
    "a forged entry pointing at an older digest": _insert_forged,
    "two entries swapped": _swap,
    "an entry edited and the rest re-hashed": _edit_and_rehash_the_rest,
    "an entry edited": lambda files: _rewrite(
        files[1], {**json.loads(files[1].read_text()), "who": "mallory"}
    ),
}


@pytest.mark.parametrize("tampering", TAMPERING)
def test_verify_finds_every_kind_of_tampering(tmp_path, capsys, monkeypatch, tampering):
    trail, files = _trail_of(tmp_path)
    assert trail.verify() == []
    TAMPERING[tampering](files)
    assert trail.verify(), tampering


def test_a_torn_or_unreadable_entry_is_reported_and_crashes_nothing(tmp_path):
    trail, files = _trail_of(tmp_path, 3)
    _rewrite(files[1], {})
    files[1].write_bytes(b"")  # what a crash inside a write leaves
    _rewrite(files[2], {})
    files[2].write_text("{not json")
    problems = trail.verify()
    assert [p for p in problems if "torn or unreadable" in p] == [
        "0000000002.json: torn or unreadable entry (empty)",
        "0000000003.json: torn or unreadable entry (not an entry (JSONDecodeError))",
    ]
    later = trail.append("rollback", "m", who="ben")  # the trail goes on after them
    assert later.seq == 4 and [e.seq for e in trail.entries()] == [1, 4]


def test_an_action_is_on_record_from_its_start_so_a_killed_one_shows(tmp_path):
    trail = anchored(tmp_path)
    with audited(trail, "backfill", "2026-10-01..2026-10-07"):
        (started,) = trail.actions()  # the process could be killed here
        assert started.result == "started, no end recorded (killed?)"
    (done,) = trail.actions()
    assert done.result == "ok" and [e.result for e in trail.entries()] == ["started", "ok"]
    assert trail.verify() == []


def test_an_action_that_fails_is_recorded_with_why(tmp_path):
    trail = AuditTrail(root=str(tmp_path / "audit"))
    with pytest.raises(LookupError), audited(trail, "rollback", "m", {"snapshot_id": 1}):
        raise LookupError("snapshot 1 was never published on main")
    (entry,) = trail.actions()
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
    assert "4 entries, intact" in capsys.readouterr().out  # each action: its start and end


def test_a_run_launched_by_hand_in_the_ui_is_recorded_once_and_cli_runs_are_not(lakehouse):
    lakehouse.seed(DAY, 1)
    job = lakehouse.defs.resolve_job_def("daily_assets_job")
    manual = job.execute_in_process(
        instance=lakehouse.instance,
        partition_key=DAY.isoformat(),
        tags={"marts/user": "dora.nagy"},
        raise_on_error=False,
    )
    run_job(lakehouse.defs, lakehouse.instance, daily_assets_job, (str(DAY), str(DAY)))
    trail = AuditTrail(root=lakehouse.settings.audit_root)
    sensor, cursor = build_audit_sensor(), None
    for _ in range(2):  # a second tick finds nothing new
        with build_sensor_context(
            instance=lakehouse.instance, resources={"audit": trail}, cursor=cursor
        ) as context:
            sensor(context)
            cursor = context.cursor
    (entry,) = trail.entries()
    assert (entry.who, entry.action, entry.result) == ("dora.nagy", "manual_run", "ok")
    assert entry.params["run_id"] == manual.run_id and cursor


def test_who_launched_a_manual_run_is_never_guessed():
    ui = {".dagster/grpc_info": '{"host": "localhost"}'}
    assert launcher_of(ui) == (ANONYMOUS, "ui_run")
    assert launcher_of({**ui, "marts/user": "dora.nagy"}) == ("dora.nagy", "ui_run")
    # `dagster asset materialize` runs in its own process: no launcher, no user
    assert launcher_of({"dagster/partition": "2026-10-05"}) == (UNNAMED, "manual_run")
