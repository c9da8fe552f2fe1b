"""Durability benchmark: kill ``i2v run`` at random moments, run it again, count what it cost.

Each trial starts an emulator (its own process), runs the pipeline on N rows as its own
process group, SIGKILLs the whole group at a random point (after a random number of
creates, plus a random delay: during creates, polls and downloads), then runs the same
command again to the end. From the emulator's counters and the destination's merged
manifest it counts: jobs paid for twice (``billed_twice``, must be 0), rows missing from
the manifest (must be 0), rows completed, and rows left ``submit_unknown`` (a create cut
off between its intent and its answer: never sent again on its own).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bench.common import (
    Emulator,
    PrefectHomes,
    client_env,
    emit,
    emulator_args,
    i2v_command,
    log,
    work_folder,
    write_inputs,
)


def trial(number: int, folder: Path, homes: PrefectHomes, rows: int, rng: random.Random) -> dict[str, Any]:
    """One crash and one rerun; the figures of that trial."""
    started = time.monotonic()
    csv = write_inputs(folder / "input", rows)
    dest = folder / "dest"
    args = emulator_args(max_concurrent=8, generation_seconds=1.0, generation_jitter=0.3)
    with Emulator(args, folder / "emulator") as emulator:
        env = {**client_env(emulator.url), "PREFECT_HOME": str(homes.new(f"trial-{number}")), "I2V_SUPERVISED": "1"}
        command = [
            *i2v_command(),
            "run",
            str(csv),
            "--dest",
            str(dest),
            "--max-in-flight",
            "8",
            "--poll-interval",
            "0.2",
        ]
        target = rng.randint(1, rows)
        with (folder / "run.log").open("ab") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + 300
            while emulator.stats()["creates"] < target and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.5))
            killed_after = emulator.stats()["creates"]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(60)
            rerun = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=600, check=False)
        stats = emulator.stats()
    frame = pd.read_parquet(dest / "manifest.parquet")
    completed = int((frame["status"] == "completed").sum())
    unknown = int((frame["error_kind"] == "submit_unknown").sum())
    return {
        "trial": number,
        "killed_after_creates": killed_after,
        "rerun_exit": rerun.returncode,
        "billed_twice": stats["billed_twice"],
        "rows_lost": rows - int(frame["row_key"].nunique()),
        "rows_completed": completed,
        "rows_submit_unknown": unknown,
        "jobs_made": sum(stats["jobs"].values()),
        "wall_s": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--rows", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="three trials")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    trials = 3 if args.quick else args.trials
    rng = random.Random(args.seed)
    started = time.monotonic()
    results = []
    with work_folder(args.work_dir, "i2v-bench-durability-", keep=args.keep) as folder:
        homes = PrefectHomes(folder / "prefect")
        for number in range(trials):
            result = trial(number, folder / f"trial-{number}", homes, args.rows, rng)
            log(f"trial {number}: {result}")
            results.append(result)
    emit(
        {
            "bench": "durability",
            "trials": trials,
            "rows_per_trial": args.rows,
            "duplicate_jobs": sum(r["billed_twice"] for r in results),
            "rows_lost": sum(r["rows_lost"] for r in results),
            "rows_completed_after_faults": sum(r["rows_completed"] for r in results),
            "rows_submit_unknown": sum(r["rows_submit_unknown"] for r in results),
            "wall_s": round(time.monotonic() - started, 1),
            "per_trial": results,
        },
        args.out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
