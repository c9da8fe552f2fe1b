"""The vendor sample's approach, scaled to a CSV: one row at a time, create, poll on a fixed beat, download.

    python -m bench.seed_client CSV --dest DIR --poll-interval S [--limit N]

Reads ``AIMLAPI_BASE_URL`` and ``AIMLAPI_API_KEY``. Like the sample on the vendor's page for
``alibaba/wan2.5-i2v-preview``, it uses the legacy path (vendor in the path), fetches the status right
after creating, sleeps the poll interval while the job is running, and moves on to the next row only
when this one is done; it then downloads the video. Prints one JSON object as the last line of stdout.
"""

from __future__ import annotations

import argparse
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
PATH = "/v2/generate/video/alibaba/generation"
RUNNING = {"waiting", "active", "queued", "generating", "processing"}


def data_uri(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"


def generate(http: httpx.Client, body: dict[str, Any]) -> str:
    while True:
        response = http.post(PATH, json=body)
        if response.status_code == 429:
            time.sleep(float(response.headers.get("Retry-After", "1")))
            continue
        response.raise_for_status()
        return str(response.json()["id"])


def wait(http: httpx.Client, generation_id: str, poll_s: float, timeout_s: float) -> tuple[str, int]:
    started = time.monotonic()
    polls = 0
    while time.monotonic() - started < timeout_s:
        response = http.get(PATH, params={"generation_id": generation_id})
        polls += 1
        response.raise_for_status()
        data = response.json()
        status = data.get("status")
        if status in RUNNING:
            time.sleep(poll_s)
            continue
        if status == "completed":
            return str(data["video"]["url"]), polls
        raise RuntimeError(f"generation {generation_id} ended {status}: {data.get('error')}")
    raise RuntimeError(f"generation {generation_id}: timeout after {timeout_s:.0f}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--poll-interval", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one job may take")
    parser.add_argument("--limit", type=int, help="only the first N rows")
    args = parser.parse_args()

    base_url = os.environ["AIMLAPI_BASE_URL"].rstrip("/")
    headers = {"Authorization": f"Bearer {os.environ['AIMLAPI_API_KEY']}"}
    with args.csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))[: args.limit]
    (args.dest / "videos").mkdir(parents=True, exist_ok=True)
    completed = polls = 0
    started = time.monotonic()
    with httpx.Client(base_url=base_url, headers=headers, timeout=60.0, trust_env=False) as http:
        for index, row in enumerate(rows):
            body: dict[str, Any] = {
                "model": MODEL,
                "prompt": row["prompt"],
                "image_url": data_uri(args.csv.parent / row["image_url"]),
            }
            if row.get("duration"):
                body["duration"] = row["duration"]  # the sample sends it as a string
            if row.get("resolution"):
                body["resolution"] = row["resolution"]
            try:
                generation_id = generate(http, body)
                url, row_polls = wait(http, generation_id, args.poll_interval, args.timeout)
                polls += row_polls
                with http.stream("GET", url) as response:
                    response.raise_for_status()
                    with (args.dest / "videos" / f"{row.get('id') or index}.mp4").open("wb") as out:
                        for chunk in response.iter_bytes():
                            out.write(chunk)
            except (httpx.HTTPError, RuntimeError, KeyError, ValueError) as exc:
                print(f"row {index}: {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            completed += 1
            print(f"row {index}: done ({row_polls} polls)", file=sys.stderr, flush=True)
    result = {
        "rows": len(rows),
        "completed": completed,
        "failed": len(rows) - completed,
        "polls": polls,
        "wall_s": round(time.monotonic() - started, 3),
    }
    print(json.dumps(result), flush=True)
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
