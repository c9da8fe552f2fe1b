"""Publish benchmark: the memory and time of the end of a run, on a synthetic destination of N rows.

Builds (in a work folder) a local destination holding one run's manifest parts (N rows, in parts
of ``--rows-per-part``, cells of realistic size: 64-character row keys, 100-200 character prompts,
URIs, parameters as JSON) and a record per row, then runs the steps a run's publish does:

* ``run_manifest``: the parts streamed into ``runs/<run>/manifest.parquet`` and ``.csv``, tallied;
* ``merge``: the run merged into the destination's root ``manifest.parquet`` and ``.csv``;
* ``metadata``: ``metadata.jsonl`` written from the root.

Then a second run re-runs the same rows in another order (every row skipped: its video is already
stored, or it failed for good), and the three steps run again: its merge takes every row's outcome
from its record.

Each run's steps run one after the other in a process of their own, as in the flow process. That
process imports what it needs, converts one value with pyarrow (which imports pandas, as the flow
process's shards did long before), notes its RSS (the baseline), then samples its RSS every 50 ms
in a thread: each step's figure is the peak over that baseline while it ran (and over the RSS when
it started, since what an earlier step left resident counts in the first), with the seconds it
took and the peak of pyarrow's memory pool (what Arrow itself held, whatever the allocator keeps).
``--engine DIR`` runs the steps on another tree of the engine (e.g. ``git archive HEAD | tar -x -C
DIR``), so that revisions compare on the same data.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

from bench.common import MB, REPO_ROOT, emit, log, rounded, work_folder

SAMPLE_S = 0.05
STEPS = ("run_manifest", "merge", "metadata")
#: Prompts are drawn from its words.
_SCENE = (
    "a slow dolly shot across a misty harbour at dawn gulls circling the masts while soft light spills over "
    "wet cobblestones the camera rises to reveal the old lighthouse and a fishing boat leaving port cinematic "
    "shallow depth of field gentle film grain warm colour grade"
)
_WORDS = tuple(_SCENE.split())


# --- the synthetic destination --------------------------------------------------------------------


def _outcome(index: int, rng: random.Random) -> dict[str, Any]:
    """Run 1's outcome of row ``index``: mostly completed, some failed for good."""
    key = hashlib.sha256(f"row-{index}".encode()).hexdigest()
    prompt = ""
    while len(prompt) < rng.randint(100, 200):
        prompt += rng.choice(_WORDS) + " "
    name = f"clip-{index:06d}"
    params = {"aspect_ratio": "16:9", "duration": rng.choice((5, 10)), "resolution": "720p", "seed": index}
    row: dict[str, Any] = {
        "row_key": key,
        "row_index": index,
        "id": name,
        "image_url": f"https://images.example.com/datasets/harbour/{key[:24]}.png",
        "prompt": prompt.strip(),
        "model": "alibaba/wan2.5-i2v-preview",
        "route": "universal",
        "params": json.dumps(params, sort_keys=True),
        "run": "r1",
        "flow_run_id": hashlib.md5(f"flow-{index // 1000}".encode()).hexdigest(),
        "generation_id": hashlib.md5(f"job-{index}".encode()).hexdigest(),
        "submit_attempts": 1,
        "polls": rng.randint(1, 6),
        "submitted_at": 1.79e9 + index,
        "completed_at": 1.79e9 + index + 60,
    }
    if index % 50 == 7:
        row.update(
            status="failed",
            error_kind="rejected",
            retryable=False,
            error_message=f"400 Bad Request: the prompt of row {index} was refused by the provider's checks",
        )
        return row
    row.update(
        status="completed",
        generation_seconds=60.0,
        video_uri=f"videos/{name}.mp4",
        video_bytes=rng.randint(2_000_000, 9_000_000),
        video_sha256=hashlib.sha256(f"video-{index}".encode()).hexdigest(),
        duration_s=float(params["duration"]),
        width=1280,
        height=720,
        fps=24.0,
        codec="h264",
        mismatch="duration 10s asked, 5.0s got" if index % 40 == 3 else None,
        thumbnail_uri=f"thumbs/{name}.jpg",
        credits_used=0.5,
    )
    return row


def _rerun(row: dict[str, Any], index: int) -> dict[str, Any]:
    """Run 2's outcome of the same work at row ``index``: skipped, as a rerun reports it."""
    again = {**row, "row_index": index, "run": "r2", "submit_attempts": 0, "polls": 0, "retryable": False}
    if row["status"] == "completed":
        again.update(status="skipped", error_kind="already_done", error_message="video stored by run r1")
    else:
        again.update(
            status="skipped",
            error_kind=row["error_kind"],
            error_message=f"not retried (failed for good in run r1): {row['error_message']}",
        )
    return again


def build(dest_root: Path, run: str, rows: int, rows_per_part: int) -> None:
    """Write ``run``'s parts (and, for the first run, a record per row)."""
    from i2v.manifest import run_table as manifest
    from i2v.outcomes import RowOutcome
    from i2v.storage.local import LocalDestination

    dest = LocalDestination(dest_root)
    rng = random.Random(7)
    first = [_outcome(index, rng) for index in range(rows)]
    if run == "r1":
        records = dest.root / "records"
        records.mkdir(parents=True, exist_ok=True)
        for row in first:
            (records / f"{row['row_key']}.json").write_text(RowOutcome(**row).to_json())
        table = first
    else:
        order = list(range(rows))
        random.Random(11).shuffle(order)
        table = [_rerun(first[old], new) for new, old in enumerate(order)]
    del first
    for shard, start in enumerate(range(0, rows, rows_per_part)):
        outcomes = [RowOutcome(**row) for row in table[start : start + rows_per_part]]
        manifest.write_part(dest, run, shard, outcomes)


# --- the steps ---------------------------------------------------------------------------------------


def step_function(name: str, dest_root: Path, run: str, parts: int) -> Callable[[], object]:
    from i2v.manifest import merged
    from i2v.manifest import run_table as manifest
    from i2v.manifest import videofolder as export
    from i2v.report import summary as report
    from i2v.storage.local import LocalDestination

    dest = LocalDestination(dest_root)

    def run_manifest() -> object:
        tally = report.Tally()

        def tallied() -> Iterator[Any]:
            for shard in range(parts):
                table = manifest.read_part(dest, manifest.part_key(run, shard))
                assert table is not None, f"part {shard} is missing"
                for record in table.to_pylist():
                    tally.add(record)
                yield table

        manifest.write_tables(dest, run, tallied())
        return tally.summary().total

    def merge() -> object:
        return merged.merge(dest)

    def metadata() -> object:
        return export.write_metadata(dest)

    return {"run_manifest": run_manifest, "merge": merge, "metadata": metadata}[name]


def measure_steps(dest_root: Path, run: str, parts: int) -> list[dict[str, Any]]:
    """Run a run's publish steps in this process; each one's peak RSS over the RSS before the first, and its seconds."""
    import pyarrow as pa

    steps = {name: step_function(name, dest_root, run, parts) for name in STEPS}
    imports_pandas = "pandas" in sys.modules
    # pyarrow imports pandas (when installed) the first time it converts Python values; the
    # flow process has done so long before it publishes, so the baseline includes it.
    pa.array([0])
    process = psutil.Process()
    gc.collect()
    baseline = process.memory_info().rss
    pool = pa.default_memory_pool()
    peaks = {"rss": baseline, "pool": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_S):
            peaks["rss"] = max(peaks["rss"], process.memory_info().rss)
            peaks["pool"] = max(peaks["pool"], pool.bytes_allocated())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    figures = []
    for name, step in steps.items():
        before = process.memory_info().rss
        peaks.update(rss=before, pool=pool.bytes_allocated())
        started = time.perf_counter()
        result = step()
        seconds = time.perf_counter() - started
        peaks["rss"] = max(peaks["rss"], process.memory_info().rss)
        figures.append(
            {
                "step": name,
                "run": run,
                "seconds": rounded(seconds, 2),
                "peak_growth_mb": rounded((peaks["rss"] - baseline) / MB, 1),
                "own_growth_mb": rounded((peaks["rss"] - before) / MB, 1),
                "arrow_pool_peak_mb": rounded(peaks["pool"] / MB, 1),
                "result": result if isinstance(result, (int, list)) else str(result),
            }
        )
    done.set()
    sampler.join()
    for figure in figures:
        figure.update(baseline_rss_mb=rounded(baseline / MB, 1), engine_imports_pandas=imports_pandas)
    return figures


def child(args: list[str], engine: Path | None) -> Any:
    """Run ``bench/publish.py ARGS`` in a fresh process (on ``engine``'s tree when given); its JSON line."""
    env = dict(os.environ)
    path = [str(engine)] if engine is not None else []
    env["PYTHONPATH"] = os.pathsep.join([*path, str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the destination (default: %(default)s)")
    parser.add_argument("--rows-per-part", type=int, default=1000, help="rows per shard's part (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="10,000 rows instead")
    parser.add_argument("--engine", type=Path, help="a tree of the engine to run the steps on (default: this one)")
    parser.add_argument("--out", type=Path, help="also write the figures to this file")
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--build", help=argparse.SUPPRESS)  # in a process of its own
    parser.add_argument("--publish", help=argparse.SUPPRESS)
    parser.add_argument("--dest", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rows = 10_000 if args.quick else args.rows
    parts = -(-rows // args.rows_per_part)
    if args.build:
        build(args.dest, args.build, rows, args.rows_per_part)
        print(json.dumps({"built": args.build}))
        return 0
    if args.publish:
        print(json.dumps(measure_steps(args.dest, args.publish, parts)))
        return 0

    engine = args.engine.resolve() if args.engine else None
    common = ["--rows", str(rows), "--rows-per-part", str(args.rows_per_part)]
    steps = []
    with work_folder(args.work_dir, "i2v-bench-publish-", keep=args.keep) as folder:
        dest = folder / "dest"
        for run in ("r1", "r2"):
            log(f"building {run}: {rows} rows in {parts} parts")
            started = time.perf_counter()
            child([*common, "--build", run, "--dest", str(dest)], engine)
            log(f"built {run} in {time.perf_counter() - started:.1f} s")
            for figures in child([*common, "--publish", run, "--dest", str(dest)], engine):
                log(f"{run} {figures['step']}: {figures['seconds']} s, peak +{figures['peak_growth_mb']} MB")
                steps.append(figures)
        sizes = {name: rounded((dest / name).stat().st_size / MB, 1) for name in ("manifest.parquet", "metadata.jsonl")}
    emit(
        {
            "bench": "publish",
            "rows": rows,
            "rows_per_part": args.rows_per_part,
            "engine": str(engine or REPO_ROOT),
            "file_mb": sizes,
            "steps": steps,
            "max_peak_growth_mb": max(step["peak_growth_mb"] for step in steps),
        },
        args.out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
