"""`marts backfill --workers N`: the daily chunks of a range run side by side in worker
processes on the embedded deployment, and the lake ends exactly as one serial build leaves it;
without `--workers`, a range larger than one run's budget goes a run per core."""

from __future__ import annotations

import collections
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from marts_project.core.partitions import chunk_peak_bytes, daily_partitions, run_range
from marts_project.core.processes import available_memory, usable_cores
from marts_project.execution import runs
from marts_project.execution.runs import instance_for, refresh_days
from marts_project.raw.sources import source_specs
from marts_project.resources.duck import INTERRUPTED_QUERY, interrupted_query, keeps_interrupts
from marts_project.settings import Settings
from marts_project_tests.conftest import DAY, Lakehouse, comparable_rows, days

WINDOW = days(DAY, 6)


def backfill(
    settings: Settings, window: list[dt.date], *options: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`marts backfill` of `window` as an operator runs it, on `settings`' data folder."""
    environ = {**os.environ, "MARTS_DATA_DIR": str(settings.data_dir), "MARTS_SENSORS": "off"}
    environ.pop("DAGSTER_HOME", None)  # the data folder's own instance
    argv = ["backfill", "--start", str(window[0]), "--end", str(window[-1]), *options]
    done = subprocess.run(
        [str(Path(sys.executable).with_name("marts")), *argv],
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.quick
def test_a_range_larger_than_one_run_goes_one_run_per_core_as_memory_allows(monkeypatch):
    """Without --workers: a range whose landing files fit one run is one run in one process
    (a second process's start costs more than it gains); a larger one runs a chunk per core,
    never more than the available memory holds at a run's peak each."""
    budget = 100_000_000
    peak = chunk_peak_bytes(budget)
    monkeypatch.setattr(runs, "usable_cores", lambda: 4)
    monkeypatch.setattr(runs, "available_memory", lambda: 10 * peak)
    assert runs.default_workers(budget, budget) == 1
    assert runs.default_workers(budget + 1, budget) == 4
    monkeypatch.setattr(runs, "available_memory", lambda: int(2.5 * peak))
    assert runs.default_workers(10 * budget, budget) == 2
    monkeypatch.setattr(runs, "available_memory", lambda: peak // 2)
    assert runs.default_workers(10 * budget, budget) == 1  # never none
    monkeypatch.setattr(runs, "available_memory", lambda: None)  # not known: one
    assert runs.default_workers(10 * budget, budget) == 1


def host(tmp_path: Path, available_kb: int, cgroup: str, files: dict[str, str]) -> tuple:
    """A fake /proc (MemAvailable, this process's cgroup line) and cgroup tree."""
    proc, cgroups = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text(f"MemTotal: 99999999 kB\nMemAvailable: {available_kb} kB\n")
    (proc / "self" / "cgroup").write_text(cgroup)
    for name, text in files.items():
        (cgroups / name).parent.mkdir(parents=True, exist_ok=True)
        (cgroups / name).write_text(text)
    return proc, cgroups


@pytest.mark.quick
def test_the_memory_a_backfill_may_take_is_the_hosts_or_its_containers_limit(tmp_path: Path):
    """A container's memory limit (cgroup v2 or v1) caps what new processes can take, below the
    host's available memory; no limit, or no cgroup files, leaves the host's."""
    gib = 2**30
    v2 = host(
        tmp_path / "v2",
        8 * 2**20,
        "0::/box\n",
        {"box/memory.max": str(3 * gib), "box/memory.current": str(gib)},
    )
    assert available_memory(*v2) == 2 * gib
    v1 = host(
        tmp_path / "v1",
        8 * 2**20,
        "4:memory:/box\n0::/\n",
        {
            "memory/box/memory.limit_in_bytes": str(4 * gib),
            "memory/box/memory.usage_in_bytes": str(gib),
        },
    )
    assert available_memory(*v1) == 3 * gib
    inside = host(  # in a container the host's path is not there: its files are at the root
        tmp_path / "inside",
        8 * 2**20,
        "0::/docker/f00d\n",
        {"memory.max": str(gib), "memory.current": "0"},
    )
    assert available_memory(*inside) == gib
    unlimited = host(
        tmp_path / "unlimited", 2**20, "0::/\n", {"memory.max": "max", "memory.current": "5"}
    )
    assert available_memory(*unlimited) == gib
    bare = host(tmp_path / "bare", 2**20, "", {})
    assert available_memory(*bare) == gib


@pytest.mark.quick
def test_the_cores_a_backfill_may_use_are_capped_by_its_containers_cpu_quota(tmp_path: Path):
    """`--cpus 2` on a larger host (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`) is two cores,
    a fraction rounds up; no quota leaves the cores the process's affinity allows."""
    allowed = len(os.sched_getaffinity(0))
    v2 = host(tmp_path / "v2", 1, "0::/box\n", {"box/cpu.max": "150000 100000"})
    v1 = host(
        tmp_path / "v1",
        1,
        "1:cpu,cpuacct:/box\n",
        {
            "cpu,cpuacct/box/cpu.cfs_quota_us": "100000",
            "cpu,cpuacct/box/cpu.cfs_period_us": "100000",
        },
    )
    none = host(tmp_path / "none", 1, "0::/\n", {"cpu.max": "max 100000"})
    assert usable_cores(*v2) == min(2, allowed)
    assert usable_cores(*v1) == 1
    assert usable_cores(*none) == allowed


def test_chunks_run_side_by_side_and_the_lake_equals_a_serial_build(tmp_path: Path):
    settings = Settings.local(tmp_path / "parallel")
    instance = instance_for(settings.data_dir / "dagster_home")  # the one the CLI opens
    parallel = Lakehouse(settings, instance)
    parallel.seed(WINDOW[0], len(WINDOW))
    done = backfill(settings, WINDOW, "--workers", "2")
    assert "2 at a time" in done.stdout
    assert "Warning" not in done.stderr  # a worker is set up before the definitions load

    daily = [r for r in instance.get_run_records() if r.dagster_run.job_name == "daily_assets_job"]
    assert len(daily) == 2  # six small days fit one chunk, cut in two for the two workers
    spans = sorted((r.start_time, r.end_time) for r in daily)
    overlapping = [b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False)]
    assert any(overlapping), f"no two chunks ran at once: {spans}"
    for spec in parallel.defs.resolve_all_asset_specs():
        if spec.partitions_def != daily_partitions:
            continue
        built = collections.Counter(
            r.partition_key for r in instance.fetch_materializations(spec.key, limit=1000).records
        )
        assert built == {d.isoformat(): 1 for d in WINDOW}, spec.key

    with DagsterInstance.ephemeral() as serial_instance:
        serial = Lakehouse(Settings.local(tmp_path / "serial"), serial_instance)
        serial.seed(WINDOW[0], len(WINDOW))
        outcomes = refresh_days(serial.defs, serial_instance, WINDOW[0], WINDOW[-1])
        assert all(o.success for o in outcomes), outcomes
        identifiers = sorted(serial.warehouse.table_identifiers())
        assert identifiers == sorted(parallel.warehouse.table_identifiers())
        for identifier in identifiers:
            assert comparable_rows(parallel.warehouse, identifier, settings.landing) == (
                comparable_rows(serial.warehouse, identifier, serial.settings.landing)
            ), identifier


def started(
    settings: Settings, instance: DagsterInstance, window: list[dt.date], *options: str
) -> subprocess.Popen:
    """`marts backfill` of `window` in 2-day chunks, started in a session of its own (its
    process group is what a terminal's Ctrl-C reaches), once each of its processes is inside
    a daily run: as many as `--workers` says (read from the run storage: a worker's progress
    lines reach a pipe in blocks, not as they are printed)."""
    environ = {**os.environ, "MARTS_DATA_DIR": str(settings.data_dir), "MARTS_SENSORS": "off"}
    environ.pop("DAGSTER_HOME", None)
    argv = ["backfill", "--start", str(window[0]), "--end", str(window[-1]), "--chunk-days", "2"]
    command = subprocess.Popen(
        [str(Path(sys.executable).with_name("marts")), *argv, *options],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    processes = int(options[options.index("--workers") + 1])
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and command.poll() is None:
        running = instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
        if sum(r.dagster_run.job_name == "daily_assets_job" for r in running) == processes:
            return command
        time.sleep(0.05)
    command.kill()
    raise AssertionError(f"{processes} daily runs never ran at once: {command.communicate()}")


def children(parent: int) -> list[tuple[int, str]]:
    """The pid and command line of each child process of `parent` (from /proc; a process that
    ends while it is read is left out)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[1] == str(parent):
                found.append((int(stat.parent.name), (stat.parent / "cmdline").read_text()))
        except (OSError, IndexError):
            continue
    return found


def seeded(tmp_path: Path, count: int):
    """A data folder with `count` days of landing files and the instance the CLI opens: its
    settings, instance, days and each day's landing bytes."""
    settings = Settings.local(tmp_path / "data")
    instance = instance_for(settings.data_dir / "dagster_home")
    lake = Lakehouse(settings, instance)
    window = days(DAY, count)
    lake.seed(window[0], len(window))
    return settings, instance, window, lake.landing.snapshot().day_bytes(source_specs())


def test_a_backfill_sizes_its_daily_runs_by_the_landing_bytes_they_read(tmp_path: Path):
    """Without --chunk-days a daily run holds as many days as MARTS_CHUNK_MB of landing files
    allow: a budget of two and a half days' files runs five days in three runs (two days, two
    days and one, in some order)."""
    settings, instance, window, sizes = seeded(tmp_path, 5)
    assert min(sizes.values()) > 0.8 * max(sizes.values())  # any two days fit, no three
    budget = (2 * max(sizes.values()) + 0.5 * min(sizes.values())) / 1e6
    done = backfill(settings, window, "--workers", "1", env={"MARTS_CHUNK_MB": f"{budget:.6f}"})
    assert "MB of landing files" in done.stdout
    daily = sorted(
        run_range(r.dagster_run.tags)
        for r in instance.get_run_records()
        if r.dagster_run.job_name == "daily_assets_job"
    )
    covered = [dt.date.fromisoformat(first) for first, _ in daily]
    lengths = [
        (dt.date.fromisoformat(last) - dt.date.fromisoformat(first)).days + 1
        for first, last in daily
    ]
    assert len(daily) == 3 and sorted(lengths) == [1, 2, 2]  # no fewer runs fit the budget
    assert covered[0] == window[0] and sum(lengths) == len(window)
    assert all(a[1] < b[0] for a, b in zip(daily, daily[1:], strict=False))  # each day once


def test_without_workers_a_range_larger_than_one_run_goes_a_run_per_core(tmp_path: Path):
    """No --workers, four days whose landing files need more than one run: the chunks run a
    run per core (the command says so and why), in a multiple of that many daily runs."""
    settings, instance, window, sizes = seeded(tmp_path, 4)
    budget = 1.5 * max(sizes.values()) / 1e6
    done = backfill(settings, window, env={"MARTS_CHUNK_MB": f"{budget:.6f}"})
    cores = usable_cores()
    daily = [r for r in instance.get_run_records() if r.dagster_run.job_name == "daily_assets_job"]
    if cores < 2:  # one core: one process, as before
        assert "at a time" not in done.stdout
        return
    assert f"{cores} at a time (the default for a range larger than one run" in done.stdout
    assert len(daily) % min(cores, len(window)) == 0


def test_once_a_chunk_fails_no_further_chunk_starts_and_nothing_builds_on_it(tmp_path: Path):
    """Four one-day chunks, two at a time, the second day's ad stats file retyped at the source:
    the first two chunks fail (the first day's partition reads the second day's file for its
    late rows), the last two never start, and no week, month or dimension is built on them;
    each failure is one line under its step, the command exits 1."""
    settings, instance, window, _ = seeded(tmp_path, 4)
    drifted = settings.data_dir / "landing" / "mkt_ad_stats" / f"{window[1]}.csv"
    drifted.write_text(drifted.read_text().replace("impressions", "impressionz", 1))
    environ = {**os.environ, "MARTS_DATA_DIR": str(settings.data_dir), "MARTS_SENSORS": "off"}
    environ.pop("DAGSTER_HOME", None)
    argv = ["backfill", "--start", str(window[0]), "--end", str(window[-1]), "--chunk-days", "1"]
    done = subprocess.run(
        [str(Path(sys.executable).with_name("marts")), *argv, "--workers", "2"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    runs = [r.dagster_run for r in instance.get_run_records()]
    started = sorted(run_range(r.tags) for r in runs if r.job_name == "daily_assets_job")
    assert started == [(window[0].isoformat(),) * 2, (window[1].isoformat(),) * 2]
    assert {r.job_name for r in runs} == {"daily_assets_job"}
    assert done.stdout.count("impressions missing from mkt_ad_stats/") == 2
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_stops_every_run_at_once_with_one_line_and_exit_130(tmp_path: Path, workers: str):
    """Ctrl-C (SIGINT to the command's process group, as a terminal sends it) while daily chunks
    run, in one process or two side by side: each running run stops where it was (the step it
    was in fails, or it ends between two steps; no step starts after that: before, one stopped
    in a DuckDB query went on with every step not reading it), is recorded failed (automation
    and `marts sync` build what it did not), no later run starts, and the command says so in
    one line, exit 130, no traceback."""
    settings, instance, window, _ = seeded(tmp_path, 4)
    command = started(settings, instance, window, "--workers", workers)
    os.killpg(command.pid, signal.SIGINT)
    out, err = command.communicate(timeout=120)
    assert command.returncode == 130, out + err
    assert err.strip().splitlines()[-1].startswith("marts: interrupted: run "), err
    assert "recorded failed" in err and "Traceback" not in err and "Warning" not in err, err
    records = instance.get_run_records()
    assert {r.dagster_run.job_name for r in records} == {"daily_assets_job"}  # nothing after
    statuses = [r.dagster_run.status.value for r in records]
    assert "FAILURE" in statuses and set(statuses) <= {"FAILURE", "SUCCESS"}, statuses
    for record in records:
        steps = [
            e.dagster_event.event_type_value
            for e in instance.all_logs(record.dagster_run.run_id)
            if e.dagster_event and e.dagster_event.is_step_event
        ]
        kinds = [k for k in steps if k in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE")]
        assert kinds.count("STEP_START") == kinds.count("STEP_SUCCESS") + kinds.count(
            "STEP_FAILURE"
        ), kinds  # every step that started ended
        if "STEP_FAILURE" in kinds:  # the one the interrupt stopped: nothing started after it
            assert kinds.count("STEP_FAILURE") == 1 and kinds[-1] == "STEP_FAILURE", kinds


def test_a_run_interrupted_in_a_duckdb_query_stops_instead_of_running_the_rest():
    """DuckDB reports Ctrl-C during a query as RuntimeError('Query interrupted'); a step body
    raises it as the interrupt it was (`keeps_interrupts`, on every table's and check's step),
    so the run stops there (the step not reading the stopped one never starts) and the command
    hears an interrupt."""
    from dagster import AssetSelection, Definitions, asset, define_asset_job

    ran = []

    @asset
    @keeps_interrupts
    def a_stopped() -> None:
        raise RuntimeError(INTERRUPTED_QUERY)  # what DuckDB raises

    @asset
    def b_independent() -> None:
        ran.append("independent")

    job = define_asset_job("interrupted_job", AssetSelection.all())
    defs = Definitions(assets=[a_stopped, b_independent], jobs=[job])
    with DagsterInstance.ephemeral() as instance:
        with pytest.raises(runs.RunInterrupted):
            runs.run_job(defs, instance, job, None)
        assert [r.dagster_run.status.value for r in instance.get_run_records()] == ["FAILURE"]
    assert ran == []


@pytest.mark.quick
def test_only_duckdbs_report_of_an_interrupted_query_counts_as_an_interrupt():
    assert interrupted_query(RuntimeError(INTERRUPTED_QUERY))
    assert not interrupted_query(RuntimeError("Query failed"))
    assert not interrupted_query(ValueError(INTERRUPTED_QUERY))
    assert not interrupted_query(None)


@pytest.mark.quick
def test_a_step_body_raises_duckdbs_interrupted_query_as_an_interrupt_and_nothing_else():
    @keeps_interrupts
    def body(error: Exception) -> None:
        raise error

    @keeps_interrupts
    def checks(error: Exception):
        yield 1
        raise error

    with pytest.raises(KeyboardInterrupt):
        body(RuntimeError(INTERRUPTED_QUERY))
    with pytest.raises(KeyboardInterrupt):
        list(checks(RuntimeError(INTERRUPTED_QUERY)))
    with pytest.raises(RuntimeError, match="Query failed"):
        body(RuntimeError("Query failed"))
    assert next(checks(ValueError())) == 1  # a generator stays a generator


def test_a_worker_killed_mid_chunk_is_one_line_and_its_run_is_failed_by_the_next_command(
    tmp_path: Path,
):
    """A worker process killed while it runs its chunk (the kernel's OOM killer, an operator):
    the command's own chunk finishes, nothing after it starts, the command says in one line
    what happened and exits 1; the killed run, left started, is failed by the next command."""
    settings, instance, window, _ = seeded(tmp_path, 4)
    command = started(settings, instance, window, "--workers", "2")
    (worker,) = [pid for pid, line in children(command.pid) if "spawn_main" in line]
    os.kill(worker, signal.SIGKILL)
    out, err = command.communicate(timeout=300)
    assert command.returncode == 1, out + err
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith("marts: error: a worker process ended before its chunk did")
    ), err
    assert "Traceback" not in err, err
    records = instance.get_run_records()
    assert {r.dagster_run.job_name for r in records} == {"daily_assets_job"}
    statuses = sorted(r.dagster_run.status.value for r in records)
    assert statuses == ["STARTED", "SUCCESS"], statuses
    assert len(runs.fail_orphaned_runs(instance)) == 1  # what the next command does first
