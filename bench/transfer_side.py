"""One side of the transfer benchmark, in its own process so its memory is its own.

``ours URL BUCKET KEY``: the pipeline's :func:`i2v.engine.download.store_video` (stream from the
URL into an S3 multipart upload, spooled and decoded before the upload is completed).
``boto3 FILE BUCKET KEY``: plain ``upload_fileobj`` of the same file from local disk.
Both print one JSON line: seconds spent, resident memory before and at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

import psutil


def _s3() -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")


def ours(url: str, bucket: str, key: str) -> dict[str, Any]:

    from i2v.api.client import make_http_client
    from i2v.api.downloads import DownloadRules
    from i2v.api.settings import ApiSettings, Secret
    from i2v.engine.download import store_video
    from i2v.engine.offload import Offload
    from i2v.storage.s3 import S3Destination

    dest = S3Destination(_s3(), bucket, "")
    # The file server is on loopback, as the emulator is: the API's own rules allow it.
    rules = DownloadRules.for_api(url)
    offload = Offload(4)

    async def run() -> Any:
        # The pipeline's download client, made as the pipeline makes it: one connection per transfer.
        settings = ApiSettings(Secret("unused"), base_url=url, timeout_s=120)
        async with make_http_client(settings, max_connections=1) as http:
            return await store_video(http, url, dest, name=key, offload=offload, rules=rules)

    before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    stored = asyncio.run(run())
    seconds = time.perf_counter() - started
    offload.close()
    return {"seconds": seconds, "bytes": stored.video_bytes, "rss_before": before, "frames": stored.info.frames}


def plain(path: str, bucket: str, key: str) -> dict[str, Any]:
    client = _s3()
    before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    with open(path, "rb") as handle:
        client.upload_fileobj(handle, bucket, key)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "bytes": os.path.getsize(path), "rss_before": before}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("side", choices=("ours", "boto3"))
    parser.add_argument("source")
    parser.add_argument("bucket")
    parser.add_argument("key")
    args = parser.parse_args()
    result = (
        ours(args.source, args.bucket, args.key) if args.side == "ours" else plain(args.source, args.bucket, args.key)
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
