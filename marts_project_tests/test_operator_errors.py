"""What an operator does wrong or unusually gets a clear answer, never silence or a traceback:
files for days that are not partitions, a rewrite that keeps size and time, two commands at
once on a fresh folder, nonsense numbers on the command line."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pytest
from dagster import build_sensor_context

from marts_project.cli import main
from marts_project.cluster.supervisor import ClusterError, write_instance
from marts_project.deployment import open_resource
from marts_project.execution.runs import instance_for
from marts_project.instance.config import EARLIER_HEADERS, render
from marts_project.resources.landing import LandingZone
from marts_project.settings import Settings
from marts_project.simulator import FAR_FUTURE, SimConfig, land
from marts_project_tests.conftest import DAY, free_port


def tick(lakehouse, cursor: str | None):
    sensor = lakehouse.defs.resolve_sensor_def("landing_sensor")
    with build_sensor_context(
        instance=lakehouse.instance,
        cursor=cursor,
        definitions=lakehouse.defs,
        resources=lakehouse.defs.resources,
    ) as context:
        return sensor.evaluate_tick(context)


def test_a_rewrite_that_keeps_size_and_modification_time_is_still_noticed(tmp_path):
    landing = LandingZone(root=str(tmp_path))
    landing.write_bytes("mkt_campaigns", DAY, b"a,b\n1,2\n")
    path = tmp_path / "mkt_campaigns" / f"{DAY}.csv"
    before = landing.fingerprints()
    stat = path.stat()
    path.write_bytes(b"a,b\n3,4\n")  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same modification time
    assert landing.fingerprints() != before


def test_files_for_days_that_are_not_partitions_are_reported_once_not_skipped_silently(
    lakehouse, capfd
):
    future = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=400)
    lakehouse.landing.write_bytes("mkt_campaigns", dt.date(2019, 5, 1), b"x\n")
    lakehouse.landing.write_bytes("mkt_campaigns", future, b"x\n")

    first = tick(lakehouse, None)

    assert not first.run_requests
    told = capfd.readouterr().err
    assert "before the first partition (2024-01-01) and are never built" in told
    assert "have not closed yet" in told and str(future) in told
    cursor = json.loads(first.cursor)
    assert f"told:mkt_campaigns/{future}.csv" in cursor  # warned about: told once a version
    second = tick(lakehouse, first.cursor)
    assert not getattr(second, "run_requests", None)
    assert "have not closed yet" not in capfd.readouterr().err  # told once, not every tick


def test_two_commands_at_once_on_a_fresh_folder_both_start(tmp_path):
    code = (
        "import sys; from pathlib import Path; "
        "from marts_project.execution.runs import instance_for; "
        "instance_for(Path(sys.argv[1])).get_runs(); print('ok')"
    )
    home = tmp_path / "dagster_home"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(home)], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outputs == ["ok"] * 3
    assert all(p.returncode == 0 for p in procs)


@pytest.mark.parametrize(
    "argv",
    [
        ["show", "ops_orders_fact", "--limit", "-1"],
        ["seed", "--days", "0"],
        ["reprocess", "--days", "x"],
    ],
)
def test_nonsense_numbers_are_refused_with_a_usage_error(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    option = next(arg for arg in argv if arg.startswith("--"))
    assert f"Invalid value for '{option}'" in err, err


def test_a_sync_that_does_not_converge_says_so_and_keeps_its_cursor(lakehouse, monkeypatch, capsys):
    import functools

    from marts_project.automation import loop

    monkeypatch.setenv("MARTS_DATA_DIR", str(lakehouse.settings.data_dir))
    monkeypatch.setenv("DAGSTER_HOME", str(lakehouse.settings.data_dir / "dagster_home"))
    lakehouse.seed(DAY, 1)
    monkeypatch.setattr(loop, "converge", functools.partial(loop.converge, max_ticks=1))

    assert main(["sync"]) == 1

    out = capsys.readouterr().out
    assert "NOT in sync: automation still had work after 1 ticks" in out
    saved = json.loads((lakehouse.settings.data_dir / "sync_state.json").read_text())
    # what the sensor requested is not forgotten: not requested again while it runs or fails
    assert f"raw/raw_mkt_campaigns|{DAY}" in json.loads(saved["sensor_cursor"])


def test_the_cluster_refuses_to_start_without_its_settings(tmp_path, monkeypatch, capsys):
    """No PostgreSQL URL or Celery broker in the environment: exit 2, naming what is missing,
    and nothing started."""
    monkeypatch.setenv("MARTS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    for name in ("MARTS_DAGSTER_PG_URL", "MARTS_CELERY_BROKER", "MARTS_CELERY_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    assert main(["cluster", "up", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "MARTS_DAGSTER_PG_URL" in err and "MARTS_CELERY_BROKER" in err
    assert not (tmp_path / "home" / "cluster").exists()
    monkeypatch.setenv("MARTS_EXECUTOR", "celery")  # any command of the cluster deployment
    assert main(["summary"]) == 2
    assert "MARTS_CELERY_BROKER and MARTS_CELERY_BACKEND" in capsys.readouterr().err


def test_the_cluster_refuses_more_runs_at_once_than_workers(tmp_path, monkeypatch, capsys):
    """Each run takes a worker: a run launched with no worker free would wait in Celery's queue
    and be failed by run monitoring after its start timeout, as if it had been lost."""
    monkeypatch.setenv("MARTS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert main(["cluster", "up", "--workers", "2", "--max-runs", "3"]) == 2
    assert "--max-runs 3 is more than the 2 workers" in capsys.readouterr().err
    assert not (tmp_path / "home" / "cluster").exists()


def test_a_cluster_backfill_with_no_webserver_to_queue_its_runs_is_refused(
    tmp_path, monkeypatch, capsys, database
):
    """The cluster's settings, its landing files there, but nothing listening where its
    webserver should be: exit 2 in one line that says where it looked, nothing queued."""
    home = tmp_path / "home"
    pg = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"
    env = {
        "MARTS_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(home),
        "MARTS_EXECUTOR": "celery",
        "MARTS_DAGSTER_PG_URL": pg,
        "MARTS_CATALOG_URI": pg,
        "MARTS_CELERY_BROKER": "pyamqp://guest:guest@127.0.0.1:5672//",
        "MARTS_CELERY_BACKEND": "redis://127.0.0.1:6379/1",
        "MARTS_WEBSERVER_URL": f"http://127.0.0.1:{free_port()}",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    home.mkdir()
    write_instance(home)
    land(open_resource(Settings.from_env(env), "landing"), [DAY], FAR_FUTURE, SimConfig(seed=3))

    assert main(["backfill", "--start", str(DAY)]) == 2

    err = capsys.readouterr().err
    assert f"webserver at {env['MARTS_WEBSERVER_URL']} cannot be reached" in err
    assert "marts cluster status" in err and "Traceback" not in err


def test_the_cluster_rewrites_its_own_older_instance_but_never_another_deployments(tmp_path):
    """An upgrade's instance settings reach a home an earlier `marts cluster up` wrote (in this
    version's words or an earlier one's); the embedded deployment's home (its run history) is
    refused."""
    for first_line in (render("cluster").split("\n", 1)[0], EARLIER_HEADERS["cluster"]):
        older = tmp_path / f"cluster_home_{len(first_line)}"
        older.mkdir()
        (older / "dagster.yaml").write_text(f"{first_line}\nstorage: {{}}\n")
        write_instance(older)
        assert (older / "dagster.yaml").read_text() == render("cluster")

    embedded = tmp_path / "embedded_home"
    instance_for(embedded).dispose()
    before = (embedded / "dagster.yaml").read_text()
    with pytest.raises(ClusterError, match="another deployment's instance"):
        write_instance(embedded)
    assert (embedded / "dagster.yaml").read_text() == before


def test_the_readme_demo_command_runs_every_option_it_shares_with_backfill(tmp_path):
    """`marts demo` (the README's first command) takes the run options `marts backfill` takes."""
    marts = str(Path(sys.executable).with_name("marts"))
    env = {**os.environ, "MARTS_DATA_DIR": str(tmp_path), "MARTS_SENSORS": "off"}
    env.pop("DAGSTER_HOME", None)
    argv = ["demo", "--days", "2", "--rows-per-day", "20", "--chunk-days", "1", "--workers", "2"]
    demo = subprocess.run([marts, *argv], env=env, capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "2 at a time" in demo.stdout and "mkt_campaign_performance_fact" in demo.stdout


def test_the_marts_command_keeps_what_it_wrote_and_printed_and_its_exit_status(tmp_path):
    """`marts` ends its process without Python's teardown: everything a command printed and
    wrote must be there, and its status must be the command's."""
    marts = str(Path(sys.executable).with_name("marts"))
    env = {**os.environ, "MARTS_DATA_DIR": str(tmp_path), "MARTS_SENSORS": "off"}
    env.pop("DAGSTER_HOME", None)

    def command(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([marts, *argv], env=env, capture_output=True, text=True, timeout=300)

    assert command("seed", "--days", "1", "--end", str(DAY)).returncode == 0
    backfill = command("backfill", "--start", str(DAY))
    assert backfill.returncode == 0, backfill.stderr
    assert "daily_assets_job" in backfill.stdout and "dimensions_job" in backfill.stdout
    trail = json.loads(command("audit", "--json").stdout)  # another process reads it back
    assert [(e["action"], e["result"]) for e in trail][-1] == ("backfill", "ok")

    refused = command("backfill", "--start", str(DAY), "--end", str(DAY - dt.timedelta(days=1)))
    assert refused.returncode == 2
    assert "range is reversed" in refused.stderr
    (tmp_path / "landing" / "psp_refunds" / f"{DAY}.csv").unlink()  # a source did not deliver
    missing = command("backfill", "--start", str(DAY))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines() == [
        f"marts: error: 1 landing file missing under {tmp_path / 'landing'}: "
        f"psp_refunds/{DAY}.csv; a day is built once every source it reads has delivered it "
        "(`marts seed` writes demo files; `--select` builds only some tables)"
    ]
    trail = json.loads(command("audit", "--json").stdout)
    refusals = [e["result"] for e in trail if e["result"].startswith("failed")][-2:]
    assert "range is reversed" in refusals[0] and "landing file missing" in refusals[1]


def test_a_failed_step_prints_its_error_under_its_line_and_no_stack_trace(tmp_path):
    """As dbt prints a failed model: the step's line, then what went wrong in one line; the
    steps that read it count as skipped; Dagster's own log (with its stack traces) only when
    asked for with --log-level."""
    marts = str(Path(sys.executable).with_name("marts"))
    env = {**os.environ, "MARTS_DATA_DIR": str(tmp_path), "MARTS_SENSORS": "off"}
    env.pop("DAGSTER_HOME", None)
    seeded = subprocess.run([marts, "seed", "--days", "1", "--end", str(DAY)], env=env)
    assert seeded.returncode == 0
    landed = tmp_path / "landing" / "mkt_ad_stats" / f"{DAY}.csv"
    landed.write_text(landed.read_text().replace("impressions", "impressionz", 1))
    argv = [marts, "backfill", "--start", str(DAY)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    failed = next(i for i, line in enumerate(lines) if " ERROR " in line)
    assert "raw.raw_mkt_ad_stats" in lines[failed]
    assert "required column(s) impressions missing from mkt_ad_stats/" in lines[failed + 1]
    assert "Traceback" not in done.stderr and "Stack Trace" not in done.stderr
    assert "SKIP=0" not in lines[-1] and "RUNS_FAILED=1" in lines[-1]
    verbose = subprocess.run(
        [*argv, "--log-level", "ERROR"], env=env, capture_output=True, text=True, timeout=300
    )
    assert verbose.returncode == 1 and "Stack Trace" in verbose.stderr


def test_a_command_that_reads_a_lake_refuses_a_missing_data_folder_in_one_line(tmp_path):
    marts = str(Path(sys.executable).with_name("marts"))
    env = {**os.environ, "MARTS_DATA_DIR": str(tmp_path / "nowhere")}
    for argv in (["show", "mkt_channel_dim"], ["summary"], ["plan"], ["audit", "--verify"]):
        done = subprocess.run([marts, *argv], env=env, capture_output=True, text=True)
        assert done.returncode == 2, argv
        assert done.stderr.strip().splitlines() == [
            f"marts: error: no data folder at {tmp_path / 'nowhere'} (MARTS_DATA_DIR): run "
            "`marts demo` to build one, or point MARTS_DATA_DIR at an existing one"
        ], argv
    assert not (tmp_path / "nowhere").exists()  # and none was made


def _as_nobody(*command: str) -> subprocess.CompletedProcess:
    """`command` run as user nobody, group nogroup only."""
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command],
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(
    "setting, mode",
    [
        ({}, "0o700"),
        ({"MARTS_DATA_GROUP": "nogroup"}, "0o750"),
        ({"MARTS_SERVING_GROUPS": "finance=nogroup"}, "0o711"),
    ],
)
def test_the_data_folder_is_private_to_its_user_whatever_the_umask(monkeypatch, setting, mode):
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user (setpriv)")
    root = Path(tempfile.mkdtemp(prefix="marts-private-"))  # not under pytest's 0700 folder
    root.chmod(0o755)
    data = root / "data"
    monkeypatch.setenv("MARTS_DATA_DIR", str(data))
    for name, value in setting.items():
        monkeypatch.setenv(name, value)
    previous = os.umask(0o022)
    try:
        assert main(["seed", "--days", "1", "--rows-per-day", "5"]) == 0
        assert oct(data.stat().st_mode & 0o777) == mode
        landed = next((data / "landing").rglob("*.csv"))
        read = _as_nobody("cat", str(landed))  # another user, in the data group when there is one
        if "MARTS_DATA_GROUP" in setting:
            assert read.returncode == 0, read.stderr
        else:
            assert read.returncode != 0 and "Permission denied" in read.stderr
        assert _as_nobody("ls", str(data)).returncode != 0 or "MARTS_DATA_GROUP" in setting
        if "MARTS_SERVING_GROUPS" in setting:  # finance's readers still reach their database
            finance = Settings.from_env().serving_dir / "finance"
            open_resource(Settings.from_env(), "serving").publish(
                "finance.t", pa.table({"x": [1]}), lambda: pa.table({"x": [1]})
            )
            assert _as_nobody("ls", str(finance)).returncode == 0
            assert _as_nobody("cat", str(data / "catalog.db")).returncode != 0
    finally:
        os.umask(previous)
        shutil.rmtree(root, ignore_errors=True)


def test_a_run_left_started_by_a_killed_cli_is_failed_by_the_next_command(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "MARTS_DATA_DIR": str(data)}
    marts = [sys.executable, "-m", "marts_project"]
    last = str(DAY + dt.timedelta(days=1))
    seed = [*marts, "seed", "--days", "2", "--rows-per-day", "30", "--end", last]
    subprocess.run(seed, env=env, check=True)
    backfill = subprocess.Popen(
        [*marts, "backfill", "--start", str(DAY), "--end", last],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    for line in backfill.stdout:  # killed once its run has started a step
        if "/32 " in line:
            break
    backfill.kill()
    backfill.wait()

    instance = instance_for(data / "dagster_home")  # what every command opens
    (run,) = instance.get_runs()
    assert run.status.value == "FAILURE"
    assert "ended without finishing it" in str(instance.all_logs(run.run_id)[-1])


def test_a_copied_data_folder_never_writes_to_the_original(tmp_path, monkeypatch, capsys):
    original, copy = tmp_path / "data", tmp_path / "copy"
    monkeypatch.setenv("MARTS_DATA_DIR", str(original))
    day = str(DAY)
    assert main(["seed", "--days", "1", "--rows-per-day", "20", "--end", day]) == 0
    assert main(["backfill", "--start", day]) == 0
    shutil.copytree(original, copy, symlinks=True)
    events = original / "dagster_home" / "history" / "events"
    before = sorted((p.name, p.stat().st_mtime_ns) for p in events.iterdir())

    instance_for(copy / "dagster_home")  # the copy's instance keeps its own history
    config = (copy / "dagster_home" / "dagster.yaml").read_text()
    assert f'base_dir: "{copy}/dagster_home/history/events"' in config
    monkeypatch.setenv("MARTS_DATA_DIR", str(copy))
    capsys.readouterr()
    assert main(["backfill", "--start", day]) == 2  # its catalog points at the original's lake
    assert "the data folder was copied or moved" in capsys.readouterr().err
    assert sorted((p.name, p.stat().st_mtime_ns) for p in events.iterdir()) == before

    # adopted once, the copy works in its new place from its own files, rebuilding nothing
    original_files, original_events = _tree(original), _event_count(events)
    assert main(["relocate"]) == 0
    assert main(["plan"]) == 0  # its build records came along: nothing is out of date
    capsys.readouterr()
    assert main(["sync"]) == 0 and "in sync: 0 runs" in capsys.readouterr().out
    assert main(["backfill", "--start", day]) == 0
    warehouse = open_resource(Settings.from_env(), "warehouse")
    table = warehouse.load_table("marketing.mkt_campaign_performance_fact")
    files = [task.file.file_path for task in table.scan().plan_files()]
    assert files and all(f.startswith(f"file://{copy}/") for f in files)
    assert _tree(original) == original_files  # nothing of the original's lake changed
    assert _event_count(events) == original_events  # nor its history
    monkeypatch.setenv("MARTS_DATA_DIR", str(original))
    theirs = open_resource(Settings.from_env(), "warehouse")
    mart = "marketing.mkt_campaign_performance_fact"
    assert _rows_of(theirs.read(mart)) == _rows_of(warehouse.read(mart))


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root` with its size and modification time, but the event log (this
    test process still holds the original's open, and SQLite checkpoints it when it closes)."""
    files = [p for p in root.rglob("*") if p.is_file() and "history" not in p.parts]
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in files}


def _event_count(events: Path) -> int:
    """How many events the event log in folder `events` holds."""
    with contextlib.closing(
        sqlite3.connect(f"file:{events / 'event_log.db'}?mode=ro", uri=True)
    ) as con:
        return con.execute("select count(*) from event_logs").fetchone()[0]


def _rows_of(table) -> list[str]:
    kept = table.drop_columns([c for c in table.column_names if c == "_last_refreshed_at"])
    return sorted(repr(sorted(row.items())) for row in kept.to_pylist())


def test_relocation_reads_nothing_outside_the_original_warehouse():
    from marts_project.resources.relocation import moved

    old, new = "file:///a/data/warehouse", "file:///b/copy/warehouse"
    assert moved(f"{old}/raw/t/data/x.parquet", old, new) == f"{new}/raw/t/data/x.parquet"
    for outside in ("file:///etc/passwd", f"{old}/../../../etc/passwd", f"{old}x/y", old):
        with pytest.raises(PermissionError):
            moved(outside, old, new)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["backfill", "--start", "2026-10-05", "--end", "2026-10-01"], "range is reversed"),
        (["backfill", "--start", "2001-01-01"], "is not a daily partition"),
        (["show", "no_such_mart"], "unknown mart 'no_such_mart'"),
        (["plan", "--select", "domain:nope"], "no domain named 'nope'"),
        (["backfill", "--start", "2026-10-05", "--select", "nothing_here"], "no table named"),
    ],
)
def test_each_documented_refusal_is_one_line_and_exit_2(argv, says, tmp_path):
    """The README's exit 2: refused before anything changed, in one line saying what to do."""
    marts = str(Path(sys.executable).with_name("marts"))
    (tmp_path / "data").mkdir(mode=0o700)  # an (empty) lake: the request itself is refused
    env = {**os.environ, "MARTS_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([marts, *argv], env=env, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("marts: error: ") and says in line, line


def test_missing_s3_credentials_are_refused_in_one_line(tmp_path):
    marts = str(Path(sys.executable).with_name("marts"))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    env.update(MARTS_DATA_DIR=str(tmp_path / "data"), MARTS_WAREHOUSE="s3://lake/warehouse")
    done = subprocess.run([marts, "plan"], env=env, capture_output=True, text=True)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set" in line
