"""Every command the README shows runs as written: its fenced shell blocks marked `runnable` run
in order, in a checkout of their own with a fresh data folder; servers answer; other engines read
the same numbers as marts itself."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from marts_project.settings import REPO_ROOT

README = REPO_ROOT / "README.md"
BLOCK = re.compile(r"^```bash runnable(?P<options>[^\n]*)\n(?P<body>.*?)^```$", re.M | re.S)
# `./setup.sh` is the first thing `.ci/run` does on a fresh clone and `.venv/bin/pytest` its
# last: running them again here would reinstall the package under the other tests' feet and
# run the suite inside itself, so this test checks that CI runs them and runs the rest.
RUN_BY_CI = ("./setup.sh", ".venv/bin/pytest")


@dataclass(frozen=True)
class Block:
    """A fenced `bash runnable` block: its text and its options (`server=...`, `same-numbers`)."""

    body: str
    options: tuple[str, ...]

    @property
    def server(self) -> str | None:
        return next((o.split("=", 1)[1] for o in self.options if o.startswith("server=")), None)


def runnable_blocks() -> list[Block]:
    return [
        Block(m["body"], tuple(m["options"].split())) for m in BLOCK.finditer(README.read_text())
    ]


def _without_ci_steps(body: str) -> str:
    lines = []
    for line in body.splitlines():
        if line.strip() == ".venv/bin/pytest":
            continue
        lines.append(line.removeprefix("./setup.sh && "))
    return "\n".join(lines)


def _checkout(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder that looks like the repository root to the README (its `.venv`, its
    `workspace.yaml`) with a data folder of its own, and the environment to run in it."""
    root = tmp_path / "checkout"
    root.mkdir()
    for name in (".venv", "workspace.yaml"):
        (root / name).symlink_to(REPO_ROOT / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "MARTS_"))}
    env["MARTS_DATA_DIR"] = str(root / "data")
    return root, env


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _serve(block: Block, root: Path, env: dict[str, str]) -> None:
    """Start a server block, wait until it answers, stop it: it runs as written."""
    if block.server != "daemon":
        assert _port_free(int(block.server)), f"port {block.server} is taken: stop what uses it"
    log_path = root / f"server-{block.server}.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            ["bash", "-c", block.body],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 180
            while not _answers(block.server, root, env):
                assert server.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(1)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)


def _answers(server: str, root: Path, env: dict[str, str]) -> bool:
    if server == "daemon":  # its heartbeat is in the instance
        check = subprocess.run(
            [".venv/bin/marts-daemon", "liveness-check"],
            cwd=root,
            env={**env, "DAGSTER_HOME": str(root / "data" / "dagster_home")},
            capture_output=True,
        )
        return check.returncode == 0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server}/server_info", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def test_the_readme_names_the_two_commands_ci_runs():
    first = runnable_blocks()[0].body.splitlines()
    assert first == ["./setup.sh && .venv/bin/marts demo", ".venv/bin/pytest"]
    ci = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert all(command in ci for command in RUN_BY_CI)


def test_every_runnable_block_runs_as_written_and_engines_agree(tmp_path):
    root, env = _checkout(tmp_path)
    blocks = runnable_blocks()
    assert len(blocks) >= 6
    numbers = []
    for block in blocks:
        if block.server:
            _serve(block, root, env)
            continue
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", _without_ci_steps(block.body)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, (block.body, done.stdout[-3000:], done.stderr[-3000:])
        if "same-numbers" in block.options:
            numbers.append(" ".join(done.stdout.strip().splitlines()[-1].split()))
    # marts sql, pyiceberg and DuckDB's iceberg_scan: the same rows and the same spend
    assert len(numbers) == 3 and len(set(numbers)) == 1, numbers
    rows, spend = numbers[0].split()
    assert int(rows) > 0 and float(spend) > 0
