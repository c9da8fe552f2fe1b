"""Opening a destination from its URI: ``s3://bucket/prefix`` or a local folder path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from i2v.errors import ConfigError
from i2v.storage.destination import Destination
from i2v.storage.local import LocalDestination
from i2v.storage.s3 import S3Destination

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def open_destination(uri: str, *, s3_client: S3Client | None = None) -> Destination:
    """A destination for ``s3://bucket/prefix`` or a local folder path."""
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        if not bucket:
            raise ConfigError(f"destination {uri!r} has no bucket name")
        if s3_client is None:
            raise ConfigError(f"destination {uri!r} needs an S3 client")
        return S3Destination(s3_client, bucket, prefix)
    if "://" in uri:
        raise ConfigError(f"destination {uri!r}: only s3:// URIs and local folders are supported")
    return LocalDestination(Path(uri))
