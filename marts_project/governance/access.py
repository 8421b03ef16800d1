"""Who may read which mart, decided once from the contracts and enforced by the storage: S3
(IAM / MinIO) policy documents rendered from the warehouse layout, and the serving databases
each domain's analysts open.

The warehouse keeps each namespace under its own prefix (`warehouse/<namespace>/<table>/`:
`raw` (with `raw.quarantine`, raw rows kept for repair), `staging` (PII tokens),
`intermediate`, and one per domain. The pipeline writes all of it and the audit trail, which
it may add to but never delete from; each domain's reader reads its own domain's marts, the
marts other domains grant it (`serve_to`) and nothing else (no raw, staging, intermediate or
landing object); a regulated mart has a reader of its own, who may also add to the audit
trail, and its domain's reader is refused it (a listing of the domain's prefix still shows its
object names, never its data). `marts policies BUCKET` prints the
policies; `docker/policies/` ships them for the bucket `BUCKET`.

A serving database is named like its reader: `<domain>` holds that domain's marts and views
and the marts granted to it, `<domain>__<mart>` one regulated mart alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from marts_project.core.contracts import DOMAINS, Contract
from marts_project.settings import REPO_ROOT

POLICIES_DIR = REPO_ROOT / "docker" / "policies"


def pipeline_policy(bucket: str) -> dict:
    """The pipeline's identity: reads landing, writes the warehouse, appends to the audit trail."""
    arn = f"arn:aws:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PipelineListsItsBucket",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": [arn],
            },
            {
                "Sid": "PipelineReadsTheLandingZone",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"{arn}/landing/*"],
            },
            {
                "Sid": "PipelineWritesTheWarehouse",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": [f"{arn}/warehouse/*"],
            },
            *_audit_appender(arn),
        ],
    }


def serving_database(contract: Contract) -> str:
    """The mart's own serving database: its domain's, or its own when regulated."""
    return f"{contract.domain}__{contract.name}" if contract.regulated else contract.domain


def serving_databases(contract: Contract) -> tuple[str, ...]:
    """Every serving database the mart is published to: its own first, then its grantees'."""
    return (serving_database(contract), *contract.serve_to)


def serving_plan(contracts: Iterable[Contract]) -> dict[str, tuple[str, ...]]:
    """`domain.mart` -> the serving databases it is published to (its own first)."""
    return {f"{c.domain}.{c.name}": serving_databases(c) for c in contracts}


def ungranted_reads(contracts: Iterable[Contract], reads: Mapping[str, Iterable[str]]) -> list[str]:
    """Each read of a mart across a domain that its contract does not grant (`serve_to`), and
    each view over a regulated mart (a view is served from its domain's database, where a
    regulated mart is not). `reads`: mart name -> the tables its SQL and reconciliations read."""
    by_name = {c.name: c for c in contracts}
    problems = []
    for reader_name, tables in reads.items():
        reader = by_name[reader_name]
        for table in sorted(set(tables) - {reader_name}):
            if (read := by_name.get(table)) is None:
                continue
            if read.regulated and (read.domain != reader.domain or reader.kind == "view"):
                problems.append(
                    f"{reader.domain}.{reader_name} reads {read.domain}.{table}, which is "
                    "regulated: it is served only from its own database"
                )
            elif read.domain != reader.domain and reader.domain not in read.serve_to:
                problems.append(
                    f"{reader.domain}.{reader_name} reads {read.domain}.{table}, which does not "
                    f"grant {reader.domain}: add it to serve_to in {table}.yml, or stop reading it"
                )
    return problems


def _reader(arn: str, sid: str, prefixes: list[str], denied: list[str]) -> dict:
    """Read-only access to `prefixes` (each a `warehouse/<namespace>/...` folder), minus
    `denied`."""
    statements: list[dict] = [
        {
            "Sid": f"List{sid}",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [arn],
            "Condition": {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}},
        },
        {
            "Sid": f"Read{sid}",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [f"{arn}/{p}*" for p in prefixes],
        },
    ]
    if denied:  # a domain's regulated marts: their own reader only (names stay listable)
        statements.append(
            {
                "Sid": "NoReadingOfRegulatedMarts",
                "Effect": "Deny",
                "Action": ["s3:GetObject"],
                "Resource": [f"{arn}/{p}*" for p in denied],
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def _audit_appender(arn: str) -> list[dict]:
    """Add entries to the audit trail (reading it to chain them), never delete one."""
    return [
        {
            "Sid": "ListTheAuditTrail",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [arn],
            "Condition": {"StringLike": {"s3:prefix": ["audit/*"]}},
        },
        {
            "Sid": "AppendToTheAuditTrail",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": [f"{arn}/audit/*"],
        },
        {
            "Sid": "NobodyRewritesTheAuditTrail",
            "Effect": "Deny",
            "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
            "Resource": [f"{arn}/audit/*"],
        },
    ]


def reader_policy(bucket: str, database: str, contracts: Iterable[Contract]) -> dict:
    """The analysts of one serving database, read-only: a domain's marts and the marts granted
    to it but not its regulated marts; or a regulated mart alone (`<domain>__<mart>`)."""
    contracts = list(contracts)
    arn = f"arn:aws:s3:::{bucket}"
    if "__" in database:
        domain, name = database.split("__", 1)
        if not any(c.regulated and (c.domain, c.name) == (domain, name) for c in contracts):
            raise ValueError(f"unknown serving database {database!r}: no regulated mart {name!r}")
        policy = _reader(arn, "RegulatedMart", [f"warehouse/{domain}/{name}/"], [])
        policy["Statement"] += _audit_appender(arn)  # each `marts sql` on it is recorded
        return policy
    if database not in DOMAINS:
        raise ValueError(f"unknown domain {database!r}; domains: {', '.join(DOMAINS)}")
    granted = [f"warehouse/{c.domain}/{c.name}/" for c in contracts if database in c.serve_to]
    regulated = [
        f"warehouse/{c.domain}/{c.name}/" for c in contracts if c.regulated and c.domain == database
    ]
    return _reader(arn, f"{database.title()}Marts", [f"warehouse/{database}/", *granted], regulated)


def reader_databases(contracts: Iterable[Contract]) -> list[str]:
    """Every serving database, each with a reader: the domains, then each regulated mart's."""
    return [*DOMAINS, *(serving_database(c) for c in contracts if c.regulated)]


def policies(bucket: str, contracts: Iterable[Contract]) -> dict[str, dict]:
    """Every policy by file name."""
    contracts = list(contracts)
    result = {"marts-pipeline.json": pipeline_policy(bucket)}
    for database in reader_databases(contracts):
        result[f"marts-reader-{database}.json"] = reader_policy(bucket, database, contracts)
    return result


def render(policy: dict) -> str:
    return json.dumps(policy, indent=2) + "\n"
