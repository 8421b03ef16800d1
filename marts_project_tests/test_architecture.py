"""The package's floors hold: no module imports a floor above its own and no imports form a
cycle; each package says in one line what it is; the README's Layout names what the tree holds.
(Imports inside functions count: they are dependencies too.)"""

from __future__ import annotations

import ast
import re

import pytest

from marts_project.settings import REPO_ROOT

pytestmark = pytest.mark.quick  # the unit tier: `pytest -m quick`

PACKAGE = REPO_ROOT / "marts_project"
# From the ground up: a module may import its own floor and the floors below it, never above.
FLOORS: list[tuple[str, ...]] = [
    ("settings", "process"),  # the environment, read once; a process set up
    ("core",),  # the vocabulary: days, contracts, SQL lineage, code versions
    ("instance",),  # the Dagster instance (Dagster's private names)
    ("resources",),  # the storage boundary: Iceberg, S3, DuckDB, the landing zone, the trail
    ("governance", "simulator"),  # who may read what; the simulated sources
    ("checks",),  # the audits a write runs
    ("transform",),  # the one way to build a table
    ("raw",),
    ("staging",),
    ("intermediate",),
    ("marts",),
    ("assets",),  # every asset of the deployment
    ("planning",),  # what is out of date, and why
    ("observability",),  # freshness, SLOs, failures, the page
    ("execution",),  # the jobs and their runs
    ("automation",),  # sensors, schedules, conditions
    ("cluster",),  # the cluster deployment's processes
    ("deployment", "definitions"),  # the composition root
    ("commands",),  # what each command does
    ("cli", "__main__"),  # the command: parses, calls one function, prints
]
FLOOR = {room: n for n, rooms in enumerate(FLOORS) for room in rooms}


def _modules() -> dict[str, set[str]]:
    """module -> the project modules it imports."""
    files = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
        files[name.removesuffix(".__init__")] = path

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    imports = {}
    for name, path in files.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("marts_project"):
                found |= {resolve(f"{node.module}.{alias.name}") for alias in node.names}
            elif isinstance(node, ast.Import):
                found |= {resolve(a.name) for a in node.names if a.name.startswith("marts_")}
        imports[name] = {m for m in found if m and m != name and m != "marts_project"}
    return imports


def _room(module: str) -> str:
    return module.split(".")[1] if "." in module else module


IMPORTS = _modules()


def test_every_module_stands_on_a_known_floor():
    assert {_room(m) for m in IMPORTS} - {"marts_project"} <= set(FLOOR)


def test_no_module_imports_a_floor_above_its_own():
    upward = sorted(
        f"{module} -> {dep}"
        for module, deps in IMPORTS.items()
        for dep in deps
        if module != "marts_project" and FLOOR[_room(dep)] > FLOOR[_room(module)]
    )
    assert upward == []


def test_no_imports_form_a_cycle():
    cycles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(IMPORTS.get(module, ())):
            if state.get(dep) == "open":
                cycles.append(path[path.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[module] = "done"

    for module in sorted(IMPORTS):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_every_package_says_what_it_is_in_one_line():
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and "\n" not in doc and doc.endswith("."), init


def test_the_readme_layout_names_every_package_and_top_level_module():
    layout = (REPO_ROOT / "README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^  ([\w.]+)", layout, re.M))
    tree = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    tree |= {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert tree - named == set(), "in the tree, not in the README's Layout"
    assert {n for n in named if n.endswith(".py") or "." not in n} - tree - {
        "marts_project",
        "marts_project_tests",
        "bench",
        "docker",
        "docs",
    } == set(), "in the README's Layout, not in the tree"


def test_dagsters_private_names_live_in_instance_only_each_with_why():
    """A private name (`dagster._...`) is one an upgrade may move: they all live in one package,
    each import under a comment saying why no public API serves."""
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text().splitlines()
        for n, line in enumerate(lines):
            if re.match(r"\s*(from|import) dagster\._", line):
                assert path.parent.name == "instance", f"{path}: {line}"
                assert lines[n - 1].lstrip().startswith("#"), f"{path}: {line} says no why"


def test_every_setting_is_read_in_settings_and_listed_in_the_readme():
    source = (PACKAGE / "settings.py").read_text()
    read = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', source))
    table = (REPO_ROOT / "README.md").read_text().split("| variable | default | meaning |")[1]
    table = table.split("\n\n", 1)[0]
    assert {name for name in read if f"`{name}`" not in table} == set()
    for path in PACKAGE.rglob("*.py"):
        if path.name in ("settings.py", "process.py"):  # process.py sets, never reads, settings
            continue
        text = path.read_text()
        # the supervisor hands its environment to the processes it starts, as it is
        readers = re.findall(r"os\.environ(?:\.get|\[)|os\.getenv", text)
        assert not readers, path
