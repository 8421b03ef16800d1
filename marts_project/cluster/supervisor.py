"""`marts cluster up` / `down`: the cluster deployment's processes on this host.

Up writes the cluster instance (PostgreSQL storage, queued runs) into DAGSTER_HOME and starts
the Dagster daemon, the webserver (bound to 127.0.0.1) and N Celery workers, each the way
production starts it (its own CLI, its own session and log); down stops them and everything
they started (run workers, code servers, Celery's pool processes), leaving no process behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from marts_project.core.partitions import partitions_start
from marts_project.core.processes import alive
from marts_project.instance import config as instance_config
from marts_project.instance.config import ForeignInstanceError

CODE = ["-m", "marts_project.definitions", "-a", "defs"]
REQUIRED_ENV = (
    "DAGSTER_HOME",
    "MARTS_DAGSTER_PG_URL",
    "MARTS_CELERY_BROKER",
    "MARTS_CELERY_BACKEND",
)


class ClusterError(RuntimeError):
    """The cluster cannot be started or reached as asked."""


@dataclass(frozen=True)
class Process:
    """One started process: its role, pid (= its process group) and log file."""

    name: str
    pid: int
    log: str


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def state_dir(home: Path) -> Path:
    return home / "cluster"


def _state_file(home: Path) -> Path:
    return state_dir(home) / "processes.json"


def recorded(home: Path) -> list[Process]:
    """The processes `up` started (empty when the cluster is down)."""
    path = _state_file(home)
    return [Process(**p) for p in json.loads(path.read_text())] if path.exists() else []


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children, their children, ...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def commands(workers: int, port: int) -> dict[str, list[str]]:
    """The command line of each process of the cluster."""
    started = {
        "daemon": [_bin("dagster-daemon"), "run", *CODE],
        "webserver": [_bin("dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), *CODE],
    }
    for i in range(1, workers + 1):
        started[f"worker-{i}"] = [
            _bin("celery"),
            "-A",
            "marts_project.cluster.celery_app",
            "worker",
            "--concurrency=1",  # one step at a time per worker; add workers to add steps
            f"--hostname=marts-worker-{i}@%h",
            "--queues=dagster",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=INFO",
        ]
    return started


def write_instance(home: Path) -> None:
    """Write the cluster's dagster.yaml into `home`, over one an earlier `marts cluster up` wrote
    (an upgrade's settings apply), never over another deployment's."""
    state_dir(home).mkdir(parents=True, exist_ok=True)
    try:
        instance_config.write("cluster", home, others_allowed=False)
    except ForeignInstanceError as exc:
        raise ClusterError(str(exc)) from exc


def up(workers: int, max_runs: int, port: int, env: dict[str, str] | None = None) -> list[Process]:
    """Start the cluster and wait until the webserver answers and every worker is ready."""
    env = dict(os.environ if env is None else env)
    if missing := [name for name in REQUIRED_ENV if not env.get(name)]:
        raise ClusterError(f"the cluster needs {', '.join(missing)} in the environment")
    home = Path(env["DAGSTER_HOME"])
    if [p for p in recorded(home) if alive(p.pid)]:
        raise ClusterError(f"a cluster is already up for {home}: `marts cluster down` first")
    write_instance(home)
    # Every process must see the same partitions: one started after a month boundary would
    # otherwise compute another default first partition than the daemon's.
    env.update(
        MARTS_EXECUTOR="celery",
        MARTS_MAX_CONCURRENT_RUNS=str(max_runs),
        MARTS_PARTITIONS_START=partitions_start(env),
    )
    started = []
    try:
        for name, argv in commands(workers, port).items():
            log = state_dir(home) / f"{name}.log"
            with log.open("ab") as out:
                proc = subprocess.Popen(
                    argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            started.append(Process(name, proc.pid, str(log)))
            _state_file(home).write_text(json.dumps([asdict(p) for p in started], indent=1))
        _wait_ready(started, port, workers)
    except BaseException:
        down(home)
        raise
    return started


def _wait_ready(started: list[Process], port: int, workers: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    pending = {p.name for p in started}
    while pending and time.monotonic() < deadline:
        for process in started:
            if not alive(process.pid):
                tail = Path(process.log).read_text(errors="replace")[-2000:]
                raise ClusterError(f"{process.name} exited while starting:\n{tail}")
        for process in started:
            if process.name in pending and _ready(process, port):
                pending.discard(process.name)
        time.sleep(1)
    if pending:
        raise ClusterError(f"not ready after {timeout:.0f}s: {', '.join(sorted(pending))}")


def _ready(process: Process, port: int) -> bool:
    if process.name == "webserver":
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                return True
        except OSError:
            return False
    if process.name.startswith("worker-"):
        return " ready." in Path(process.log).read_text(errors="replace")
    return True  # the daemon: alive is all it promises until its first tick


def down(home: Path, grace_seconds: float = 30) -> list[Process]:
    """Stop every process `up` started and all they started; the processes stopped."""
    stopped = recorded(home)
    doomed = set()
    for process in stopped:
        if alive(process.pid):
            doomed |= {process.pid, *descendants(process.pid)}
    for pid in doomed:  # each one: a run worker may have left its parent's process group
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and any(alive(pid) for pid in doomed):
        time.sleep(0.5)
    for pid in doomed:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    _state_file(home).unlink(missing_ok=True)
    return stopped
