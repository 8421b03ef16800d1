"""The docker stack, checked without a Docker engine: files parse, references resolve, no
secret is committed, and the image installs the project the way the README does."""

from __future__ import annotations

import re
import shlex

import yaml
from dagster._core.instance.config import dagster_instance_config

from marts_project.settings import REPO_ROOT

DOCKER = REPO_ROOT / "docker"
COMPOSE = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
ENV_EXAMPLE = dict(
    line.split("=", 1)
    for line in (DOCKER / ".env.example").read_text().splitlines()
    if line and not line.startswith("#")
)
CODE_SERVICES = ("code-server", "webserver", "daemon")


def test_compose_has_the_whole_stack():
    assert set(COMPOSE["services"]) == {
        "postgres",
        "minio",
        "create-bucket",
        "code-server",
        "webserver",
        "daemon",
    }
    assert "mc mb --ignore-existing" in COMPOSE["services"]["create-bucket"]["entrypoint"]


def test_every_compose_variable_is_documented_and_no_secret_is_committed():
    text = (DOCKER / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)(?::\?)?\}", text))
    assert used and used <= set(ENV_EXAMPLE), used - set(ENV_EXAMPLE)
    for name, value in ENV_EXAMPLE.items():
        if "PASSWORD" in name or "KEY" in name:
            assert value.startswith("change-me"), f"{name} looks like a real secret"
    assert "docker/.env" in (REPO_ROOT / ".gitignore").read_text()


def test_code_services_get_every_setting_the_code_reads():
    needed = {
        "MARTS_WAREHOUSE",
        "MARTS_LANDING",
        "MARTS_S3_ENDPOINT",
        "MARTS_CATALOG_URI",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "MARTS_PII_KEY",
        "DAGSTER_PG_USER",
        "DAGSTER_PG_PASSWORD",
        "DAGSTER_PG_HOST",
        "DAGSTER_PG_DB",
    }
    settings_source = (REPO_ROOT / "marts_project" / "settings.py").read_text()
    assert {"MARTS_WAREHOUSE", "MARTS_LANDING", "MARTS_CATALOG_URI"} <= set(
        re.findall(r'"(MARTS_[A-Z_]+)"', settings_source)
    )
    for service in CODE_SERVICES:
        assert needed <= set(COMPOSE["services"][service]["environment"]), service


def test_every_file_the_image_and_stack_reference_exists():
    build = COMPOSE["services"]["code-server"]["build"]
    context = (DOCKER / build["context"]).resolve()
    assert (context / build["dockerfile"]).is_file()
    for line in (DOCKER / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            *sources, _ = shlex.split(line)[1:]
            for source in sources:
                assert (context / source).exists(), source
    workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["grpc_server"]["host"] == "code-server"


def test_the_image_installs_with_the_readme_command():
    readme_first = (REPO_ROOT / "README.md").read_text().split("```bash\n", 1)[1].splitlines()[0]
    install = readme_first.split("&&")[0].strip()
    assert install == "./setup.sh"
    assert f"RUN {install}" in (DOCKER / "Dockerfile").read_text()


def test_the_instance_config_is_valid_dagster_config(monkeypatch):
    for name in ("DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB"):
        monkeypatch.setenv(name, "x")
    config, _ = dagster_instance_config(str(DOCKER), "dagster.yaml")
    assert "postgres" in config["storage"]
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
