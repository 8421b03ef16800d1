"""Run workers forked from one warm process, instead of started cold by the code server.

Why: Dagster's launcher asks the code server to start each run, and the code server starts a
fresh interpreter for it (multiprocessing's spawn): every run imports Dagster, pyarrow,
pyiceberg and DuckDB and builds the definitions again before its first step, 2 to 4 s on this
machine and about 5 s of CPU (sampled: 8 s of 50 s of a one-worker cluster backfill went to
each of its six runs' start, competing with the Celery worker for the two cores). The run
host is started once by the launcher (in the daemon), imports and builds the definitions once,
and forks a child per run: the child opens the instance and runs exactly what `dagster api
execute_run` runs, so the run, its events, its retries and its monitoring are Dagster's own.
The daemon starts a spare host when it starts, which imports the libraries every code location
uses while it waits for the first run (`preload.py`), and is told its location by that run.
A host is replaced when a file of its code location's package changed since it loaded it
(size or modification time), so an edited mart SQL or contract runs from the next launch on,
as with runs started cold; when the code does not load, each run worker tries again and
fails its run with the error in the run's log, as a run started cold does. The host is
single-threaded when it forks (nothing it imports starts a thread; the daemon itself, which
has threads and gRPC channels, never forks). It exits when its launcher goes (end of its
input); runs already started go on, as the code server's do.

Private API, isolated here: the body of `dagster api execute_run` (`dagster._cli.api.
_execute_run_command_body`: the run's start event with its pid, which run monitoring reads,
then `core_execute_run`) and its interrupt capture (`dagster._utils.interrupts`), which a
termination signal turns into Dagster's own cancellation. If an upgrade moves them, every run
fails to start with an error naming this module; the fallback is to delete `launch_run` and
`terminate` in `run_launcher.py` (the code server's spawn, as Dagster does it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import traceback

from dagster import DagsterInstance, DagsterRun

# Private: `dagster api execute_run`'s body, run in the forked child (no public API runs an
# existing run in this process).
from dagster._cli.api import _execute_run_command_body

# Private: the instance reference and code origin a launcher hands its run workers, as Dagster
# serializes them.
from dagster._serdes import deserialize_value, serialize_value

# Private: loading a code location from a run's origin, as Dagster's run workers do.
from dagster._utils.hosted_user_process import recon_repository_from_origin

# Private: how Dagster's run workers turn SIGINT/SIGTERM into a cancellation of the run.
from dagster._utils.interrupts import capture_interrupts

from marts_project.instance import preload
from marts_project.instance.code_version import code_version
from marts_project.instance.marts_instance import MartsInstance

_SPARES: list[subprocess.Popen] = []  # hosts started before any run, not yet given a location


def start_spare() -> None:
    """Start a host now, before any run: it imports the libraries while it waits to be told
    its code location (the daemon does this when it starts; the first launch takes it)."""
    _SPARES.append(_new_host())


def _new_host() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE)


class RunHostError(RuntimeError):
    """The run host could not be started or told to start a run."""


class RunHost:
    """The launcher's handle on its run host: started on the first launch, again if it died,
    and replaced when a file of its code location changed since it loaded it (an edited mart
    SQL or contract runs from the next launch on, as with a run started cold)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._loaded: tuple[str, str] | None = None  # (code location, its code version)
        self._lock = threading.Lock()  # the daemon launches runs from several threads

    def start_run(self, instance: DagsterInstance, run: DagsterRun) -> bool:
        """Have the host fork a run worker for `run` (returns once the host has the order);
        False when the run's code is not a package the host can load and watch."""
        origin = run.job_code_origin.repository_origin if run.job_code_origin else None
        version = code_version(origin.code_pointer) if origin is not None else None
        if version is None:
            return False
        wanted = (serialize_value(origin), version)
        order = json.dumps(
            {"instance_ref": serialize_value(instance.get_ref()), "run_id": run.run_id}
        )
        with self._lock:
            if self._loaded not in (None, wanted):  # another location, or its code changed
                self._end()
            for _ in range(2):  # a host that died since the last run is started again, once
                try:
                    if self._process is None or self._process.poll() is not None:
                        spare = _SPARES.pop() if _SPARES else None
                        alive = spare is not None and spare.poll() is None
                        self._process, self._loaded = (spare if alive else _new_host()), None
                    if self._loaded is None:  # a host not told its code location yet
                        self._send(wanted[0])
                        self._loaded = wanted
                    self._send(order)
                    return True
                except (BrokenPipeError, OSError):
                    self._process, self._loaded = None, None
        raise RunHostError(f"the run host ({__name__}) could not be started for run {run.run_id}")

    def _send(self, line: str) -> None:
        self._process.stdin.write(line.encode() + b"\n")
        self._process.stdin.flush()

    def close(self) -> None:
        """End the host (its input closes); the runs it started go on."""
        with self._lock:
            self._end()

    def _end(self) -> None:
        if self._process is not None and self._process.stdin is not None:
            self._process.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)  # it only waits for its next order
        self._process, self._loaded = None, None


def _run(order: dict) -> None:
    """In the forked child: run the ordered run as `dagster api execute_run` does."""
    ref = deserialize_value(order["instance_ref"])
    with DagsterInstance.from_ref(ref) as instance, capture_interrupts():
        _execute_run_command_body(
            order["run_id"],
            instance,
            write_stream_fn=lambda _: None,
            set_exit_code_on_failure=False,
        )


def main() -> None:
    """The host: import the libraries, read its code location (the first line of its input)
    and load it once, then fork a run worker for each order read."""
    preload.import_libraries()
    location = sys.stdin.buffer.readline()
    if not location:  # a spare whose daemon ended before any run
        return
    try:
        recon_repository_from_origin(deserialize_value(location.decode())).get_definition()
    except Exception:  # code that does not load (an edit with a typo): each run worker loads
        traceback.print_exc()  # it again and fails its run with the error, as Dagster's do
    MartsInstance.long_lived = True  # a run worker reads and writes its run's events throughout
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # run workers are reaped as they exit
    while line := sys.stdin.buffer.readline():
        order = json.loads(line)
        if os.fork():
            continue
        status = 1
        try:  # the run worker
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # its own subprocesses are waited for
            os.close(0)  # the orders are the host's
            _run(order)
            status = 0
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)  # not the host's exit handlers


if __name__ == "__main__":
    main()
