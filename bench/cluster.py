"""Scale-out: one backfill on the cluster deployment with 1, 2 and 4 Celery workers, against the
same range built by the embedded deployment (one process) on the same storage, in the same run.

Services: the PostgreSQL, RabbitMQ and Redis on 127.0.0.1 and a moto S3 server this script
starts. Both deployments keep their warehouse and read their landing files on that S3 server
(the embedded one keeps its catalog in its SQLite file, as it does in production). Each
configuration gets a fresh database, RabbitMQ virtual host and warehouse prefix; the landing
files are seeded once and shared. Both deployments' `marts backfill` plan their runs the same
way (daily runs sized by their landing bytes; on the cluster in a multiple of the runs it runs
at once, as `--workers N` does on the embedded one), so what differs is the deployment. Wall
time is `marts backfill` as a user runs it (on the cluster: its runs queued through the
webserver, waited for until the last one ends); peak RSS is the
largest high-water mark of a worker's processes (its pool process executes the runs it
takes). Per step, from the runs' events: the median step body (start to success) against the
embedded deployment's, and the cluster's wall time beyond the embedded run divided by the
steps it ran: what a step costs on the cluster beyond its work (its events written to
PostgreSQL, its commits to the PostgreSQL catalog; its share of the runs' hand-off to a worker
and the daemon's ticks).

    .venv/bin/python -m bench.cluster --days 60 --rows-per-day 50000 --workers 1,2,4
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import psycopg2
from dagster import DagsterEventType, DagsterInstance

from bench.common import END, MARTS, days_before, marts
from marts_project.cluster import supervisor
from marts_project.deployment import open_resource
from marts_project.settings import Settings
from marts_project.simulator import FAR_FUTURE, SimConfig, land

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}


def _admin(sql: str) -> None:
    con = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(sql)
    con.close()


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True)


def _peak_gb(pids: set[int]) -> float:
    """The largest peak RSS (VmHWM) among `pids`, in GB."""
    peak = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak / 1024**2


def _union(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of `spans`."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def step_costs(instance: DagsterInstance, wall: tuple[float, float]) -> dict[str, float]:
    """How many steps the runs executed, the median seconds of a step's body (its start to its
    success, from the runs' events), and where the backfill's wall time `wall` (epoch seconds)
    went: some step executing, a run in progress with no step executing (a run's start and end,
    a launched run waiting for a worker), and no run in progress (queueing and launching runs,
    the backfill daemon's ticks, the CLI's start). A step that failed (a retried run's first
    attempt) is printed with its error: a retry costs time the table would otherwise hide."""
    bodies: list[float] = []
    steps: list[tuple[float, float]] = []
    runs: list[tuple[float, float]] = []
    ends = (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE)
    for run in instance.get_runs():
        started: dict[str, float] = {}
        stamps = []
        for entry in instance.all_logs(run.run_id):
            stamps.append(entry.timestamp)
            event = entry.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type == DagsterEventType.STEP_START:
                started[event.step_key] = entry.timestamp
            elif event.event_type in ends and event.step_key in started:
                begun = started.pop(event.step_key)
                steps.append((begun, entry.timestamp))
                if event.event_type == DagsterEventType.STEP_SUCCESS:
                    bodies.append(entry.timestamp - begun)
                else:
                    error = event.step_failure_data.error
                    message = error.message.strip() if error else "no error recorded"
                    print(f"  failed: {run.job_name} {event.step_key}: {message}", file=sys.stderr)
        if stamps:
            runs.append((min(stamps), max(stamps)))
    in_steps, in_runs = _union(steps), _union(runs)
    return {
        "runs": float(len(runs)),
        "steps": float(len(bodies)),
        "body": statistics.median(bodies) if bodies else 0.0,
        "in_steps": in_steps,
        "between_steps": in_runs - in_steps,
        "no_run": (wall[1] - wall[0]) - in_runs,
    }


def embedded_backfill(
    folder: Path, days: list[dt.date], env: dict[str, str]
) -> tuple[float, dict[str, float]]:
    """The embedded deployment's `marts backfill --workers 1` of `days` on `env`'s storage
    (one process, one run at a time, as one Celery worker: what differs is the deployment):
    its wall seconds, and its step costs with its peak RSS (`peak_gb`)."""
    began = time.time()
    seconds, peak = marts(
        folder,
        "backfill",
        "--start",
        str(days[0]),
        "--end",
        str(days[-1]),
        "--workers",
        "1",
        env=env,
    )
    with DagsterInstance.from_config(str(folder / "dagster_home")) as instance:
        costs = step_costs(instance, (began, began + seconds))
    return seconds, {**costs, "peak_gb": peak}


def run_cluster(
    root: Path, endpoint: str, bucket: str, workers: int, max_runs: int, days: list[dt.date]
) -> tuple[float, float, dict[str, float]]:
    """Wall seconds of the backfill, the peak RSS (GB) of a worker and the per-step costs, on a
    fresh cluster."""
    name = f"bench_{uuid.uuid4().hex[:8]}"
    _admin(f"create database {name}")
    _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    home = root / name
    env = {
        **os.environ,
        **CREDENTIALS,
        "DAGSTER_HOME": str(home),
        "MARTS_DATA_DIR": str(root / name / "data"),
        "MARTS_DAGSTER_PG_URL": f"{PG}/{name}",
        "MARTS_CATALOG_URI": f"{PG}/{name}",
        "MARTS_WAREHOUSE": f"s3://{bucket}/{name}",
        "MARTS_LANDING": f"s3://{bucket}/landing",
        "MARTS_S3_ENDPOINT": endpoint,
        "MARTS_CELERY_BROKER": f"pyamqp://guest:guest@127.0.0.1:5672/{name}",
        "MARTS_CELERY_BACKEND": "redis://127.0.0.1:6379/2",
        "MARTS_EXECUTOR": "celery",
        "MARTS_WEBSERVER_URL": "http://127.0.0.1:3191",
        "MARTS_SENSORS": "off",
    }
    try:
        supervisor.up(workers, max_runs, 3191, env)
        started, began = time.perf_counter(), time.time()
        out = subprocess.run(
            [MARTS, "backfill", "--start", str(days[0]), "--end", str(days[-1])],
            env=env,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        if out.returncode:
            raise RuntimeError(
                f"cluster backfill failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
            )
        pids = set()
        for process in supervisor.recorded(home):
            if process.name.startswith("worker-"):
                pids |= {process.pid, *supervisor.descendants(process.pid)}
        os.environ["MARTS_DAGSTER_PG_URL"] = env["MARTS_DAGSTER_PG_URL"]  # the instance reads it
        with DagsterInstance.from_config(str(home)) as instance:
            costs = step_costs(instance, (began, began + seconds))
        return seconds, _peak_gb(pids), costs
    finally:
        supervisor.down(home)
        _rabbitmqctl("delete_vhost", name)
        _admin(f"drop database if exists {name} with (force)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--rows-per-day", type=int, default=50_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--max-runs", type=int, help="runs at once (default: one per worker)")
    args = parser.parse_args()
    days = days_before(END, args.days)
    cfg = SimConfig(seed=7, rows_per_day=args.rows_per_day)
    with tempfile.TemporaryDirectory(prefix="marts-bench-cluster-") as tmp:
        root = Path(tmp)
        port = 3192
        moto = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("moto_server")),
                "-H",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        endpoint, bucket = f"http://127.0.0.1:{port}", "marts-bench"
        try:
            time.sleep(3)
            boto3.client(
                "s3", endpoint_url=endpoint, region_name="us-east-1", **_boto(CREDENTIALS)
            ).create_bucket(Bucket=bucket)
            os.environ.update(CREDENTIALS)
            landing = Settings.local(root / "seed")
            s3 = Settings(
                data_dir=landing.data_dir,
                warehouse=f"s3://{bucket}/seed",
                catalog_uri=landing.catalog_uri,
                landing=f"s3://{bucket}/landing",
                s3_endpoint=endpoint,
            )
            land(open_resource(s3, "landing"), days, FAR_FUTURE, cfg)
            same_storage = {
                **CREDENTIALS,
                "MARTS_WAREHOUSE": f"s3://{bucket}/embedded",
                "MARTS_LANDING": f"s3://{bucket}/landing",
                "MARTS_S3_ENDPOINT": endpoint,
            }
            base_s, base = embedded_backfill(root / "embedded", days, same_storage)
            print(
                f"{len(days)} days x {args.rows_per_day:,} rows; embedded (one process, same S3 "
                f"storage): {base_s:.1f} s, peak {base['peak_gb']:.2f} GB, {base['runs']:.0f} "
                f"runs, {base['steps']:.0f} steps, median step body {base['body']:.2f} s; "
                f"{_split(base)}"
            )
            print(
                "| workers | wall | vs embedded | peak RSS per worker | runs | steps "
                "| median step body | wall beyond the embedded run, per step "
                "| where the wall went |"
            )
            print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
            for workers in [int(w) for w in args.workers.split(",")]:
                seconds, peak, costs = run_cluster(
                    root, endpoint, bucket, workers, args.max_runs or workers, days
                )
                print(
                    f"| {workers} | {seconds:.1f} s | {seconds / base_s:.2f}x | {peak:.2f} GB "
                    f"| {costs['runs']:.0f} | {costs['steps']:.0f} | {costs['body']:.2f} s "
                    f"| {(seconds - base_s) / costs['steps']:.2f} s | {_split(costs)} |"
                )
        finally:
            moto.terminate()


def _split(costs: dict[str, float]) -> str:
    return (
        f"steps executing {costs['in_steps']:.1f} s, runs between steps "
        f"{costs['between_steps']:.1f} s, no run in progress {costs['no_run']:.1f} s"
    )


def _boto(credentials: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": credentials["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": credentials["AWS_SECRET_ACCESS_KEY"],
    }


if __name__ == "__main__":
    main()
