"""Who may touch which storage prefix, as S3 (IAM / MinIO) policy documents rendered from the
layout itself, so access follows the storage and not our code.

The warehouse keeps each namespace under its own prefix (`warehouse/<namespace>/<table>/`):
`raw` (with `raw.quarantine`, raw rows kept for repair), `staging` (PII tokens),
`intermediate`, and one per domain. The pipeline writes all of it and the audit trail, which
it may add to but never delete from; each domain's reader reads its own domain's marts and
nothing else (no raw, staging, intermediate or landing object). `python -m
marts_project.access BUCKET` prints them; `docker/policies/` ships them for the bucket `BUCKET`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DOMAINS = ("marketing", "finance", "operations")
POLICIES_DIR = Path(__file__).resolve().parents[1] / "docker" / "policies"


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
            {
                "Sid": "PipelineAppendsToTheAuditTrail",
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
        ],
    }


def reader_policy(bucket: str, domain: str) -> dict:
    """A domain's analysts: that domain's marts, read-only; no other prefix."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; domains: {', '.join(DOMAINS)}")
    arn = f"arn:aws:s3:::{bucket}"
    prefix = f"warehouse/{domain}/"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": f"ListOnly{domain.title()}",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [arn],
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            },
            {
                "Sid": f"Read{domain.title()}Marts",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"{arn}/{prefix}*"],
            },
        ],
    }


def policies(bucket: str) -> dict[str, dict]:
    """Every policy by file name."""
    result = {"marts-pipeline.json": pipeline_policy(bucket)}
    for domain in DOMAINS:
        result[f"marts-reader-{domain}.json"] = reader_policy(bucket, domain)
    return result


def render(policy: dict) -> str:
    return json.dumps(policy, indent=2) + "\n"


if __name__ == "__main__":
    for name, policy in policies(sys.argv[1] if len(sys.argv) > 1 else "BUCKET").items():
        print(f"# {name}\n{render(policy)}")
