"""Process-wide clients, built once from the environment: the edge where settings enter.

Tasks receive only plain data (rows, submissions, URIs). The API key and the clients
that carry it stay here, so they never become task or flow parameters, never reach
Prefect's database, and are shared by every task thread of the process (httpx and
boto3 clients are thread-safe).
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import TYPE_CHECKING

import httpx

from i2v.api import VideoApi, make_http_client
from i2v.journal import Journal
from i2v.settings import ApiSettings
from i2v.storage import Destination, open_destination

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_lock = threading.Lock()
_http: dict[tuple[str, float], httpx.Client] = {}
_apis: dict[tuple[str, str], VideoApi] = {}
_destinations: dict[tuple[str, str], Destination] = {}


def api() -> VideoApi:
    """The API client for the current ``AIMLAPI_*`` settings."""
    settings = ApiSettings.from_env()
    fingerprint = hashlib.sha256(settings.api_key.reveal().encode()).hexdigest()
    with _lock:
        client = _apis.get((settings.base_url, fingerprint))
        if client is None:
            client = VideoApi(_http_client(settings), settings.api_key)
            _apis[(settings.base_url, fingerprint)] = client
        return client


def http() -> httpx.Client:
    """The HTTP client used for downloads (no API key attached)."""
    settings = ApiSettings.from_env()
    with _lock:
        return _http_client(settings)


def destination(uri: str) -> Destination:
    """The destination for ``uri``; S3 clients come from the usual AWS settings."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    with _lock:
        dest = _destinations.get((uri, endpoint))
        if dest is None:
            dest = open_destination(uri, s3_client=_s3_client(endpoint) if uri.startswith("s3://") else None)
            _destinations[(uri, endpoint)] = dest
        return dest


def journal(uri: str) -> Journal:
    """The journal kept under the destination ``uri``."""
    return Journal(destination(uri))


def reset() -> None:
    """Close and forget every client (tests change the environment between runs)."""
    with _lock:
        for client in _http.values():
            client.close()
        _http.clear()
        _apis.clear()
        _destinations.clear()


def _http_client(settings: ApiSettings) -> httpx.Client:
    key = (settings.base_url, settings.timeout_s)
    client = _http.get(key)
    if client is None:
        client = make_http_client(settings)
        _http[key] = client
    return client


def _s3_client(endpoint: str) -> S3Client:
    import boto3
    from botocore.config import Config

    config = Config(max_pool_connections=64, retries={"mode": "standard", "max_attempts": 5})
    return boto3.client("s3", endpoint_url=endpoint or None, config=config)
