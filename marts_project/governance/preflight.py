"""Refuses to start a deployment whose secrets are empty, short or placeholders (docker stack).

Run as `python -m marts_project.governance.preflight` before any service: it checks every
variable named in SECRETS that is set in the environment and exits 2 with the reasons.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping

from marts_project.settings import deployment_secrets

SECRETS = ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "MARTS_S3_SECRET_KEY", "MARTS_PII_KEY")
MIN_LENGTH = 16
PLACEHOLDERS = ("change-me", "changeme", "password", "secret", "example", "minioadmin", "xxx")
# placed in Dagster's storage URL as it is (MARTS_DAGSTER_PG_URL): no character that a URL
# would need escaped
URL_SAFE = {"POSTGRES_PASSWORD": re.compile(r"^[A-Za-z0-9_-]*$")}


def weak_secrets(environ: Mapping[str, str]) -> list[str]:
    """Why each secret in `environ` is not fit for a deployment (empty when all are)."""
    problems = []
    for name in SECRETS:
        value = environ.get(name)
        if value is None:
            continue
        if len(value) < MIN_LENGTH:
            problems.append(f"{name} is shorter than {MIN_LENGTH} characters")
        elif any(word in value.lower() for word in PLACEHOLDERS):
            problems.append(f"{name} looks like a placeholder")
        elif name in URL_SAFE and not URL_SAFE[name].match(value):
            problems.append(f"{name} may hold only letters, digits, - and _ (it goes in a URL)")
    return problems


def main() -> int:
    if problems := weak_secrets(deployment_secrets(SECRETS)):
        print("preflight: refusing to start: " + "; ".join(problems), file=sys.stderr)
        return 2
    print("preflight: secrets look fit for use")
    return 0


if __name__ == "__main__":
    sys.exit(main())
