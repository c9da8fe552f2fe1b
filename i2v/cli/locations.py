"""What a command's arguments name, opened: an input file (local or S3) and a destination.

S3 locations get a client built from the usual AWS settings (and ``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

from typing import Any

from i2v.inputs.sources import Opener, is_s3, opener_for
from i2v.storage.s3_client import endpoint_from_env, make_client


def opener(uri: str) -> Opener:
    """Local files, or S3 objects through a client from the usual AWS settings."""
    return opener_for(uri, make_client(endpoint_from_env()) if is_s3(uri) else None)


def destination(uri: str) -> Any:
    """The destination at ``uri``: a local folder or ``s3://bucket/prefix``."""
    from i2v.storage.from_uri import open_destination

    return open_destination(uri, s3_client=make_client(endpoint_from_env()) if is_s3(uri) else None)
