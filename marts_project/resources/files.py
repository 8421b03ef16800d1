"""One way to reach files on a local folder or any S3-compatible store (fsspec / s3fs)."""

import datetime as dt

import fsspec
from dagster import ConfigurableResource


def filesystem(
    uri: str,
    endpoint: str | None = None,
    region: str = "us-east-1",
    key: str | None = None,
    secret: str | None = None,
) -> fsspec.AbstractFileSystem:
    """The file system of `uri` (`s3://…` or a local path). Listings are never cached, so a
    rewritten file is seen at once; fsspec reuses one client per configuration. S3 retries
    follow botocore's environment (see marts_project/__init__.py)."""
    if uri.startswith("s3://"):
        return fsspec.filesystem(
            "s3",
            key=key,
            secret=secret,
            client_kwargs={"endpoint_url": endpoint, "region_name": region},
            use_listings_cache=False,
        )
    return fsspec.filesystem("file", auto_mkdir=True)


def modified_at(info: dict) -> dt.datetime | None:
    """When a file was last written, from an fsspec `info()` / `find(detail=True)` entry."""
    stamp = info.get("LastModified") or info.get("mtime")
    if stamp is None:
        return None
    if isinstance(stamp, dt.datetime):
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(float(stamp), tz=dt.UTC)


class StorageAccess(ConfigurableResource):
    """The S3 connection every storage resource shares (endpoint, region, credentials bound to
    `dagster.EnvVar` by the composition root); unused for local folders."""

    s3_endpoint: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None

    def filesystem_of(self, uri: str) -> fsspec.AbstractFileSystem:
        """The file system of `uri` reached with this connection."""
        return filesystem(
            uri, self.s3_endpoint, self.s3_region, self.s3_access_key_id, self.s3_secret_access_key
        )
