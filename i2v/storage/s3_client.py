"""The S3 client, from the usual AWS settings: built by the edges (the CLI, ``tasks/``) and passed in."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def endpoint_from_env() -> str:
    """``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (MinIO, R2, a test server); empty for AWS."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""


def make_client(endpoint: str) -> S3Client:
    """A client with a connection pool large enough for concurrent part uploads and retries on throttling."""
    import boto3
    from botocore.config import Config

    config = Config(max_pool_connections=64, retries={"mode": "standard", "max_attempts": 5})
    return boto3.client("s3", endpoint_url=endpoint or None, config=config)
