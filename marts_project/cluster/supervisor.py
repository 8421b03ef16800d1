"""`marts cluster up` / `down`: the cluster deployment's processes on this host.

Up writes the cluster instance (PostgreSQL storage, queued runs) into DAGSTER_HOME and starts
a supervisor, which starts the Dagster daemon, the webserver (bound to 127.0.0.1) and N Celery
workers, each the way production starts it (its own CLI, its own session and log), and starts
again any of them that exits (a worker killed by the OOM killer, a crashed daemon). Down stops
the supervisor first, then them and everything they started (run workers, code servers,
Celery's pool processes), leaving no process behind.
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

from marts_project.core.partitions import CHUNK_DAYS, partitions_start
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
    restarts: int = 0  # times the supervisor started it again after it exited


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
        "daemon": [_bin("marts-daemon"), "run", *CODE],
        "webserver": [_bin("dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), *CODE],
    }
    for i in range(1, workers + 1):
        started[f"worker-{i}"] = [
            _bin("celery"),
            "-A",
            "marts_project.cluster.celery_app",
            "worker",
            "--concurrency=1",  # one run at a time per worker; add workers to add runs
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


def up(
    workers: int, max_runs: int, port: int, env: dict[str, str] | None = None
) -> tuple[list[Process], dict[str, str]]:
    """Start the cluster's supervisor, which starts every process of the cluster and restarts
    any that dies; wait until the webserver answers and every worker is ready. The processes
    started, and the settings fixed for all of them."""
    from marts_project.resources.duck import share_of_cores  # DuckDB and Arrow: not in `supervise`

    env = dict(os.environ if env is None else env)
    if max_runs > workers:  # a run waiting for a worker would be failed by run monitoring
        raise ClusterError(  # after its start timeout, as if it had been lost
            f"--max-runs {max_runs} is more than the {workers} workers: each run takes a worker "
            "(runs beyond wait in Dagster's queue, not Celery's)"
        )
    if missing := [name for name in REQUIRED_ENV if not env.get(name)]:
        raise ClusterError(f"the cluster needs {', '.join(missing)} in the environment")
    home = Path(env["DAGSTER_HOME"])
    if [p for p in recorded(home) if alive(p.pid)]:
        raise ClusterError(f"a cluster is already up for {home}: `marts cluster down` first")
    write_instance(home)
    # Every process must see the same partitions: one started after a month boundary would
    # otherwise compute another default first partition than the daemon's.
    fixed = {
        "MARTS_EXECUTOR": "celery",
        "MARTS_MAX_CONCURRENT_RUNS": str(max_runs),
        "MARTS_PARTITIONS_START": partitions_start(env),
        "MARTS_CHUNK_DAYS": env.get("MARTS_CHUNK_DAYS") or str(CHUNK_DAYS),
        # the workers share this host's cores: each takes its share (`duck.use_threads`)
        "MARTS_THREADS": str(share_of_cores(workers, env)),
    }
    env.update(fixed)
    _state_file(home).unlink(missing_ok=True)
    argv = [sys.executable, "-m", __name__, str(home), str(workers), str(port)]
    with _log_of(home, "supervisor").open("ab") as out:
        started = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        return _wait_ready(home, port, workers, started), fixed
    except BaseException:
        down(home)
        raise


def supervise(home: Path, workers: int, port: int) -> None:
    """The supervisor's life: start every process of the cluster, each in a session of its
    own; restart one that exits (after 1 s, doubling up to a minute while it keeps failing
    within a minute of its start) until `down` sends SIGTERM; then stop them all."""
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, _: stopping.append(signum))
    argvs = commands(workers, port)
    children: dict[str, subprocess.Popen] = {}
    started_at: dict[str, float] = {}
    restarts = dict.fromkeys(argvs, 0)
    backoff = dict.fromkeys(argvs, 0.5)
    due: dict[str, float] = {}  # name -> when it is started again

    def start(name: str) -> None:
        with _log_of(home, name).open("ab") as out:
            children[name] = subprocess.Popen(
                argvs[name], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        started_at[name] = time.monotonic()
        me = Process("supervisor", os.getpid(), str(_log_of(home, "supervisor")))
        _write_state(
            home, [me, *(_recorded(home, n, p.pid, restarts[n]) for n, p in children.items())]
        )

    for name in argvs:
        start(name)
    while not stopping:
        time.sleep(0.5)
        now = time.monotonic()
        for name, proc in children.items():
            if name in due or proc.poll() is None:
                continue
            stable = now - started_at[name] > 60
            backoff[name] = 1.0 if stable else min(60.0, backoff[name] * 2)
            restarts[name] += 1
            due[name] = now + backoff[name]
            _say(
                f"{name} (pid {proc.pid}) exited with status {proc.returncode}; "
                f"restart {restarts[name]} in {backoff[name]:.0f} s"
            )
        for name in [n for n, when in due.items() if when <= now and not stopping]:
            del due[name]
            start(name)
    _say(f"stopping on signal {stopping[0]}")
    _terminate({pid for p in children.values() for pid in (p.pid, *descendants(p.pid))})


def _log_of(home: Path, name: str) -> Path:
    return state_dir(home) / f"{name}.log"


def _recorded(home: Path, name: str, pid: int, restarts: int) -> Process:
    return Process(name, pid, str(_log_of(home, name)), restarts)


def _write_state(home: Path, processes: list[Process]) -> None:
    """Replace the state file in one step: a reader never sees half of it."""
    path = _state_file(home)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps([asdict(p) for p in processes], indent=1))
    partial.replace(path)


def _say(message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    print(f"{stamp} UTC marts supervisor: {message}", flush=True)


def _wait_ready(
    home: Path, port: int, workers: int, started: subprocess.Popen, timeout: float = 180
) -> list[Process]:
    """The cluster's processes once all are ready; an error with its log's tail when one
    exits while starting (a restart at start-up is a configuration to fix, not a crash)."""
    deadline = time.monotonic() + timeout
    names = {"supervisor", *commands(workers, port)}
    pending = set(names)
    while time.monotonic() < deadline:
        if started.poll() is not None:
            tail = _log_of(home, "supervisor").read_text(errors="replace")[-2000:]
            raise ClusterError(f"the supervisor exited while starting:\n{tail}")
        processes = recorded(home)
        if {p.name for p in processes} == names:
            for process in processes:
                if process.restarts or not alive(process.pid):
                    tail = Path(process.log).read_text(errors="replace")[-2000:]
                    raise ClusterError(f"{process.name} exited while starting:\n{tail}")
            pending -= {p.name for p in processes if _ready(p, port)}
            if not pending:
                return processes
        time.sleep(1)
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
    return True  # the daemon and the supervisor: alive is all they promise until later


def _terminate(pids: set[int], grace_seconds: float = 30) -> None:
    """SIGTERM each of `pids`, SIGKILL those still alive after `grace_seconds`."""
    for pid in pids:  # each one: a run worker may have left its parent's process group
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.5)
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def down(home: Path, grace_seconds: float = 30) -> list[Process]:
    """Stop every process `up` started and all they started; the processes stopped. The
    supervisor goes first, so that it restarts nothing it sees stopping."""
    stopped = recorded(home)
    doomed = set()
    for process in stopped:
        if alive(process.pid):
            doomed |= {process.pid, *descendants(process.pid)}
    supervisors = {p.pid for p in stopped if p.name == "supervisor" and alive(p.pid)}
    _terminate(supervisors, grace_seconds + 5)  # it stops its children within grace
    _terminate({pid for pid in doomed if alive(pid)}, grace_seconds)
    _state_file(home).unlink(missing_ok=True)
    return stopped


if __name__ == "__main__":  # the supervisor process `up` starts: home, workers, port
    supervise(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
