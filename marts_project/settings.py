"""Every setting marts reads from the environment, and the one place it reads them: the
deployment's `Settings` (read once by the composition root) and the few values a process needs
before any deployment exists (the partitions' first day, the chunk size, the cache, who acts).
The README's settings table lists each variable (a test holds the two together)."""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Settings:
    """Where the landing zone, the Iceberg warehouse and its catalog live.

    `warehouse` is the one switch between the embedded default (a `file://` folder under
    `data/`) and any S3-compatible store (`s3://bucket/prefix`). Credentials are never stored
    here: resources read them through `dagster.EnvVar` at run time.
    """

    data_dir: Path
    warehouse: str
    catalog_uri: str
    landing: str
    audit: str = ""  # the audit trail's folder or s3:// prefix (default: <data_dir>/audit)
    s3_endpoint: str | None = None
    s3_region: str = "us-east-1"
    executor: str = "in_process"
    pii_key_from_env: bool = False
    sensor_interval_seconds: int = 30
    sensors_running: bool = True
    webserver_url: str = "http://127.0.0.1:3000"
    # serving database -> the OS group that may read it (MARTS_SERVING_GROUPS="finance=fin-bi,
    # operations=ops-bi"); without one a database is readable by the pipeline's user only
    serving_groups: tuple[tuple[str, str], ...] = ()
    data_group: str | None = None  # MARTS_DATA_GROUP: an OS group that may read the data folder
    sql_timeout_seconds: float = 300.0  # `marts sql`: a query running longer is stopped
    dagster_home: Path | None = None  # DAGSTER_HOME, else <data_dir>/dagster_home

    @property
    def instance_home(self) -> Path:
        """The Dagster instance's folder: DAGSTER_HOME, else inside the data folder."""
        return self.dagster_home or self.data_dir / "dagster_home"

    @property
    def cluster(self) -> bool:
        """The cluster deployment: runs queue on the daemon and go to Celery workers."""
        return self.executor == "celery"

    @property
    def uses_s3(self) -> bool:
        roots = (self.warehouse, self.landing, self.audit_root)
        return any(root.startswith("s3://") for root in roots)

    @property
    def audit_root(self) -> str:
        return self.audit or str(self.data_dir / "audit")

    def missing_secrets(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """Environment variables this deployment reads secrets from that are not set."""
        env = _env(environ)
        needed = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] if self.uses_s3 else []
        if self.executor == "celery":
            needed += ["MARTS_CELERY_BROKER", "MARTS_CELERY_BACKEND"]
        return [name for name in needed if not env.get(name)]

    @property
    def serving_dir(self) -> Path:
        """One folder per serving database (`marts_project/resources/serving.py`)."""
        return self.data_dir / "serving"

    @classmethod
    def local(cls, data_dir: Path) -> Settings:
        """The embedded deployment: everything in one folder, SQLite catalog."""
        data_dir = Path(data_dir).resolve()
        return cls(
            data_dir=data_dir,
            warehouse=(data_dir / "warehouse").as_uri(),
            catalog_uri=f"sqlite:///{data_dir / 'catalog.db'}",
            landing=str(data_dir / "landing"),
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from MARTS_* variables, falling back to the embedded deployment."""
        env = _env(environ)
        base = cls.local(Path(env.get("MARTS_DATA_DIR", REPO_ROOT / "data")))
        return cls(
            data_dir=base.data_dir,
            warehouse=env.get("MARTS_WAREHOUSE", base.warehouse),
            catalog_uri=env.get("MARTS_CATALOG_URI", base.catalog_uri),
            landing=env.get("MARTS_LANDING", base.landing),
            audit=env.get("MARTS_AUDIT", ""),
            s3_endpoint=env.get("MARTS_S3_ENDPOINT") or None,
            s3_region=env.get("MARTS_S3_REGION", "us-east-1"),
            executor=env.get("MARTS_EXECUTOR", "in_process"),
            pii_key_from_env="MARTS_PII_KEY" in env,
            sensor_interval_seconds=int(env.get("MARTS_SENSOR_INTERVAL_SECONDS", "30")),
            sensors_running=env.get("MARTS_SENSORS", "on") != "off",
            webserver_url=env.get("MARTS_WEBSERVER_URL", "http://127.0.0.1:3000"),
            serving_groups=_pairs(env.get("MARTS_SERVING_GROUPS", "")),
            sql_timeout_seconds=float(env.get("MARTS_SQL_TIMEOUT_SECONDS", "300")),
            data_group=env.get("MARTS_DATA_GROUP") or None,
            dagster_home=Path(env["DAGSTER_HOME"]) if env.get("DAGSTER_HOME") else None,
        )


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def partitions_start_setting(environ: Mapping[str, str] | None = None) -> str:
    """MARTS_PARTITIONS_START as set (empty: the default, `core/partitions.py`)."""
    return _env(environ).get("MARTS_PARTITIONS_START", "").strip()


class SettingError(ValueError):
    """A variable marts reads from the environment holds a value it cannot use (named)."""


def _positive(
    environ: Mapping[str, str] | None, name: str, default: str | None, kind: type, unit: str
):
    """The variable `name` as a positive number of `kind` (`default` when unset, None with no
    default), or a SettingError naming it."""
    value = _env(environ).get(name, default)
    if value is None:
        return None
    try:
        number = kind(value)
    except ValueError:
        raise SettingError(f"{name}={value!r} is not a number of {unit}") from None
    if not 0 < number < 1e9:  # also refuses nan and inf
        raise SettingError(f"{name}={value}: a positive number of {unit}, please")
    return number


def chunk_days(environ: Mapping[str, str] | None = None, default: str | None = "7") -> int | None:
    """MARTS_CHUNK_DAYS: days per run of a long range (`core/partitions.py` says why); with
    `default` None, None when it is not set (`marts cluster up` then sizes it)."""
    return _positive(environ, "MARTS_CHUNK_DAYS", default, int, "days")


def threads(environ: Mapping[str, str] | None = None) -> int | None:
    """MARTS_THREADS: threads DuckDB and Arrow use in one process; None (every core) when
    unset. Processes sharing a host's cores get their share without it (`resources/duck.py`)."""
    return _positive(environ, "MARTS_THREADS", None, int, "threads")


def chunk_megabytes(environ: Mapping[str, str] | None = None) -> float:
    """MARTS_CHUNK_MB: megabytes of landing files a daily run of the CLI reads at most
    (`core/partitions.py` says why)."""
    return _positive(environ, "MARTS_CHUNK_MB", "256", float, "megabytes")


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where derived answers outlive the process: MARTS_CACHE_DIR, else the user's cache."""
    env = _env(environ)
    default = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "marts"
    return Path(env.get("MARTS_CACHE_DIR") or default)


def acting_user(environ: Mapping[str, str] | None = None) -> str:
    """Who is acting: MARTS_USER (set by whoever deploys the CLI for people; not
    authenticated), else the operating-system user."""
    if who := _env(environ).get("MARTS_USER", "").strip():
        return who
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def celery_urls(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The cluster's broker and result backend (MARTS_CELERY_BROKER, MARTS_CELERY_BACKEND),
    credentials included: read where a Celery worker starts, never stored."""
    env = _env(environ)
    return env["MARTS_CELERY_BROKER"], env["MARTS_CELERY_BACKEND"]


def deployment_secrets(
    names: Iterable[str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The secrets among `names` that are set (what preflight judges before a stack starts)."""
    env = _env(environ)
    return {name: env[name] for name in names if name in env}


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    """`a=b,c=d` as ((a, b), (c, d)); a part without `=` is an error naming it."""
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"MARTS_SERVING_GROUPS: {part!r} is not database=group")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)
