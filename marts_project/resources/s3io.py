"""pyiceberg's fsspec FileIO with S3 retries configured, since pyiceberg passes none to botocore."""

from typing import Any

from pyiceberg.io.fsspec import FsspecFileIO, _s3
from pyiceberg.typedef import Properties
from s3fs import S3FileSystem

from marts_project.resources.files import S3_RETRIES


def _retrying_s3(properties: Properties) -> S3FileSystem:
    options: dict[str, Any] = dict(_s3(properties).storage_options)
    options["config_kwargs"] = {**options.get("config_kwargs", {}), "retries": S3_RETRIES}
    return S3FileSystem(**options)


class RetryingFsspecFileIO(FsspecFileIO):
    """FsspecFileIO whose S3 client retries throttling, 5xx and dropped connections."""

    def __init__(self, properties: Properties) -> None:
        super().__init__(properties)
        self._scheme_to_fs["s3"] = self._scheme_to_fs["s3a"] = _retrying_s3
