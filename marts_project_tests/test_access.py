"""Access is enforced by the storage, not by our code: against an S3 server that authorizes every
request by IAM policy (moto with INITIAL_NO_AUTH_ACTION_COUNT), the pipeline's identity builds
the lake and a domain's reader reads its own marts and nothing else."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from dagster import DagsterInstance

from marts_project.core.contracts import DOMAINS
from marts_project.governance.access import POLICIES_DIR, policies, reader_databases, render
from marts_project.marts import ALL_MARTS
from marts_project.settings import Settings
from marts_project_tests.conftest import DAY, Lakehouse, free_port

BUCKET = "lake"
CONTRACTS = [m.contract for m in ALL_MARTS]
REGULATED = "finance__fin_payment_reconciliation_fact"
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}
SOURCE_POLICY = {  # a source system: drops its files in the landing zone, nothing else
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"},
        {
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject"],
            "Resource": f"arn:aws:s3:::{BUCKET}/landing/*",
        },
    ],
}


def test_the_shipped_policies_are_the_ones_rendered_from_the_layout():
    for name, policy in policies("BUCKET", CONTRACTS).items():
        assert (POLICIES_DIR / name).read_text() == render(policy), name
    shipped = {p.name for p in POLICIES_DIR.glob("*.json")}
    assert shipped == set(policies("BUCKET", CONTRACTS)), "a shipped policy no contract needs"


@pytest.fixture(scope="module")
def enforcing_s3(tmp_path_factory) -> Iterator[tuple[str, dict[str, dict[str, str]]]]:
    """A moto server that authorizes every request after the setup's own: a bucket, and an IAM
    user with its policy and access key per identity."""
    identities = {
        "admin": ADMIN_POLICY,
        "source": SOURCE_POLICY,
        "pipeline": policies(BUCKET, CONTRACTS)["marts-pipeline.json"],
        **{
            d: policies(BUCKET, CONTRACTS)[f"marts-reader-{d}.json"]
            for d in reader_databases(CONTRACTS)
        },
    }
    setup_actions = 1 + 3 * len(identities)
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(setup_actions)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:  # no request: it would count
        assert time.monotonic() < deadline, "moto server did not start"
        time.sleep(0.2)
    endpoint = f"http://127.0.0.1:{port}"
    anonymous = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **anonymous).create_bucket(
        Bucket=BUCKET
    )
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", **anonymous)
    keys = {}
    for name, policy in identities.items():
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        keys[name] = {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        }
    yield endpoint, keys
    server.terminate()
    server.wait(timeout=30)
    log.close()


def _s3(endpoint: str, key: dict[str, str]):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=key["AWS_SECRET_ACCESS_KEY"],
    )


def _denied(call, **request) -> bool:
    """Whether the storage refuses the request (AccessDenied), not whether it failed."""
    try:
        call(**request)
    except ClientError as exc:
        return exc.response["Error"]["Code"] in ("AccessDenied", "403")
    return False


def test_each_domain_reads_its_own_marts_and_nothing_else(enforcing_s3, tmp_path, monkeypatch):
    endpoint, keys = enforcing_s3
    settings = Settings(
        data_dir=tmp_path / "data",
        warehouse=f"s3://{BUCKET}/warehouse",
        catalog_uri=f"sqlite:///{tmp_path / 'catalog.db'}",
        landing=f"s3://{BUCKET}/landing",
        audit=f"s3://{BUCKET}/audit",
        s3_endpoint=endpoint,
    )
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    for name, value in keys["source"].items():  # the source systems deliver
        monkeypatch.setenv(name, value)
    with DagsterInstance.ephemeral() as instance:
        lake = Lakehouse(settings, instance)
        lake.seed(DAY, 1)
        for name, value in keys["pipeline"].items():  # the pipeline builds every layer
            monkeypatch.setenv(name, value)
        lake = Lakehouse(settings, instance)
        lake.run(DAY)

    admin = _s3(endpoint, keys["admin"])
    objects = [
        o["Key"]
        for page in admin.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for o in page.get("Contents", [])
    ]

    def table_object(namespace: str, table: str) -> str:
        return next(k for k in objects if k.startswith(f"warehouse/{namespace}/{table}/"))

    regulated = table_object("finance", "fin_payment_reconciliation_fact")
    special = [  # the regulated and the granted tables: checked on their own below
        f"warehouse/{c.domain}/{c.name}/" for c in CONTRACTS if c.regulated or c.serve_to
    ]
    by_prefix = {}  # an object of every other prefix
    for key in objects:
        parts = key.split("/")
        if not any(key.startswith(s) for s in special):
            by_prefix.setdefault("/".join(parts[:2]) if parts[0] == "warehouse" else parts[0], key)
    expected = {"warehouse/raw", "warehouse/staging", "warehouse/operations", "landing"}
    assert expected <= set(by_prefix)
    quarantine = next(k for k in objects if k.startswith("warehouse/raw/quarantine/"))
    granted = {  # serve_to in the contracts: object -> the domain it is granted to
        table_object("marketing", "mkt_campaign_performance_fact"): "finance",
        table_object("finance", "fin_revenue_daily_fact"): "operations",
    }
    for domain in DOMAINS:
        reader = _s3(endpoint, keys[domain])
        own = table_object(domain, next(c.name for c in CONTRACTS if c.domain == domain))
        assert reader.get_object(Bucket=BUCKET, Key=own)["ContentLength"] > 0
        for prefix, key in by_prefix.items():
            if prefix != f"warehouse/{domain}" and granted.get(key) != domain:
                assert _denied(reader.get_object, Bucket=BUCKET, Key=key), (domain, key)
        assert _denied(reader.get_object, Bucket=BUCKET, Key=quarantine)
        assert _denied(reader.get_object, Bucket=BUCKET, Key=regulated), domain
        assert _denied(reader.put_object, Bucket=BUCKET, Key=own, Body=b"x")
        for key, grantee in granted.items():
            if grantee == domain:
                assert reader.get_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0
            elif not key.startswith(f"warehouse/{domain}/"):
                assert _denied(reader.get_object, Bucket=BUCKET, Key=key), (domain, key)
    finance = _s3(endpoint, keys["finance"])
    # listing: allowed under its prefixes; moto does not evaluate the `s3:prefix` condition that
    # keeps other prefixes' listings out, so that part (object names, never data) is untested
    listed = finance.list_objects_v2(Bucket=BUCKET, Prefix="warehouse/finance/")
    assert listed["KeyCount"] > 0

    auditor = _s3(endpoint, keys[REGULATED])  # the regulated mart's own reader: that mart only
    assert auditor.get_object(Bucket=BUCKET, Key=regulated)["ContentLength"] > 0
    for key in {*by_prefix.values(), *granted} - {regulated}:
        assert _denied(auditor.get_object, Bucket=BUCKET, Key=key), key


def test_the_pipeline_appends_to_the_audit_trail_but_cannot_delete_from_it(enforcing_s3):
    endpoint, keys = enforcing_s3
    pipeline = _s3(endpoint, keys["pipeline"])
    pipeline.put_object(Bucket=BUCKET, Key="audit/20261124T000000-a.json", Body=b"{}")
    assert _denied(pipeline.delete_object, Bucket=BUCKET, Key="audit/20261124T000000-a.json")
    assert _denied(pipeline.put_object, Bucket=BUCKET, Key="landing/x.csv", Body=b"x")
