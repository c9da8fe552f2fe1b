"""What a user would write by hand: httpx.AsyncClient under an asyncio.Semaphore, no orchestration.

    python -m bench.asyncio_client CSV --dest DIR --in-flight N --poll-interval S

Reads ``AIMLAPI_BASE_URL`` and ``AIMLAPI_API_KEY``. Each row: create (on 429 sleep ``Retry-After``
and try again), poll every ``--poll-interval``, download the video to ``DIR/videos/<id>.mp4``.
Prints one JSON object (rows, completed, failed, 429s seen) as the last line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import json
import mimetypes
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

MODEL = "alibaba/wan2.5-i2v-preview"
CREATE_PATH = "/v2/video/generations"
RUNNING = {"queued", "generating", "waiting", "active", "processing"}


def read_rows(csv_path: Path, limit: int | None) -> list[dict[str, str]]:
    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows[:limit] if limit is not None else rows


class Client:
    """One run: shared HTTP client, semaphore and counters."""

    def __init__(self, http: httpx.AsyncClient, base_dir: Path, dest: Path, in_flight: int, poll_s: float) -> None:
        self.http = http
        self.base_dir = base_dir
        self.dest = dest
        self.poll_s = poll_s
        self.slots = asyncio.Semaphore(in_flight)
        self.images: dict[str, str] = {}
        self.retries_429 = 0
        self.polls = 0
        self.errors: dict[str, int] = {}

    def data_uri(self, reference: str) -> str:
        if reference.startswith(("http://", "https://", "data:")):
            return reference
        if reference not in self.images:
            path = self.base_dir / reference
            kind = mimetypes.guess_type(path.name)[0] or "image/png"
            self.images[reference] = f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"
        return self.images[reference]

    async def one(self, index: int, row: dict[str, str]) -> bool:
        try:
            async with self.slots:
                body: dict[str, Any] = {
                    "model": MODEL,
                    "prompt": row["prompt"],
                    "image_url": self.data_uri(row["image_url"]),
                }
                if row.get("duration"):
                    body["duration"] = int(row["duration"])
                if row.get("resolution"):
                    body["resolution"] = row["resolution"]
                generation_id = await self.create(body)
                url = await self.wait(generation_id)
                await self.download(url, self.dest / "videos" / f"{row.get('id') or index}.mp4")
                return True
        except (httpx.HTTPError, RuntimeError, KeyError, ValueError) as exc:
            kind = type(exc).__name__
            self.errors[kind] = self.errors.get(kind, 0) + 1
            print(f"row {index}: {kind}: {exc}", file=sys.stderr)
            return False

    async def create(self, body: dict[str, Any]) -> str:
        while True:
            response = await self.http.post(CREATE_PATH, json=body)
            if response.status_code == 429:
                self.retries_429 += 1
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            response.raise_for_status()
            return str(response.json()["id"])

    async def wait(self, generation_id: str) -> str:
        while True:
            await asyncio.sleep(self.poll_s)
            response = await self.http.get(CREATE_PATH, params={"generation_id": generation_id})
            self.polls += 1
            if response.status_code == 429:
                self.retries_429 += 1
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            response.raise_for_status()
            data = response.json()
            status = data.get("status")
            if status == "completed":
                return str(data["video"]["url"])
            if status not in RUNNING:
                raise RuntimeError(f"generation {generation_id} ended {status}: {data.get('error')}")

    async def download(self, url: str, path: Path) -> None:
        async with self.http.stream("GET", url) as response:
            response.raise_for_status()
            with path.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    out.write(chunk)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base_url = os.environ["AIMLAPI_BASE_URL"].rstrip("/")
    key = os.environ["AIMLAPI_API_KEY"]
    rows = read_rows(args.csv, args.limit)
    (args.dest / "videos").mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {}
    if args.connections:
        # httpx's defaults (100 connections, 20 kept alive) are what a hand-written script gets, and
        # they are also the cheap choice: httpcore's pool scans every connection for every request,
        # so a pool sized to the rows in flight costs more CPU than the reconnects it saves.
        options["limits"] = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections)
    async with httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60.0,
        trust_env=False,
        **options,
    ) as http:
        client = Client(http, args.csv.parent, args.dest, args.in_flight, args.poll_interval)
        started = time.monotonic()
        done = await asyncio.gather(*(client.one(i, row) for i, row in enumerate(rows)))
        wall_s = time.monotonic() - started
    completed = sum(done)
    return {
        "rows": len(rows),
        "completed": completed,
        "failed": len(rows) - completed,
        "retries_429": client.retries_429,
        "polls": client.polls,
        "errors": client.errors,
        "wall_s": round(wall_s, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--limit", type=int, help="only the first N rows")
    parser.add_argument("--connections", type=int, default=0, help="HTTP connection pool size (0: httpx defaults)")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result), flush=True)
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
