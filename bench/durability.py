"""Durability benchmark: kill ``i2v run`` at random moments, run it again twice at once, count what it cost.

Each trial starts an emulator (its own process), runs the pipeline on N rows, SIGKILLs it
at a random point (after a random number of creates, plus a random delay: during
creates, polls and downloads), then runs the same command again to the end, together
with an overlapping second run of the same command into the same destination (as a user
who starts it again while another is still going would). Then ``--disk-trials`` trials
run into a destination on a small tmpfs filled until only a little space is left: the
run fails its rows for storage (retryably), space is freed, and a plain rerun finishes
them. What is
killed is the trial's ``--kill`` mode (``mixed``, the default, picks one per trial at
random):

- ``run``: the process that runs the flow, started directly (``I2V_SUPERVISED=1``) as
  its own process group, and that whole group: every process of the run dies at once;
- ``command``: ``i2v run`` as a user starts it, and only the command's process: the
  run's processes (the flow's, Prefect's local server) must end by themselves;
- ``group``: the same command's process group (the run's processes are in a session
  of their own, so they too must end by themselves).

From the emulator's counters, the destination's merged manifest and the processes of
the run (the command and its descendants, noted just before the kill) it counts: jobs
paid for twice (``billed_twice``, must be 0), rows missing from the manifest (must be
0), rows completed, rows left ``submit_unknown`` (a create cut off between its intent and
its answer: never sent again on its own), processes of the run still running
``LEFT_AFTER_S`` after the kill (``processes_left_after_kill``, must be 0; they are then
killed, so that the rerun does not overlap them), how long the last of them took to end
(``run_ended_s``) and how many create requests the emulator received after the kill
(``creates_after_kill``: a run that stops at once adds none or the few already on their
way; one left going adds more as long as it runs). Creates cut off by a kill are settled
from the emulator's usage logs (``--unknown-grace`` seconds after they were sent, at the
most), so none should be left ``submit_unknown``.
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
import psutil

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

#: Seconds after which a create the usage logs do not list is sent again (the emulator's
#: logs lag a second).
UNKNOWN_GRACE_S = 20.0
#: What a trial's ``--kill`` may kill (see the module's docstring).
KILLS = ("run", "command", "group")
#: How long after the kill the run's processes have to end: the grace period a run left
#: without its command has to stop (10 s, ``i2v.cli.lifetime.ORPHAN_GRACE_S``), and some.
LEFT_AFTER_S = 15.0
#: Bytes left free on the full-disk trials' tmpfs: room for the claims and journal, not for the videos.
DISK_LEFT_BYTES = 384 * 1024


def trial(number: int, folder: Path, homes: PrefectHomes, rows: int, kill: str, rng: random.Random) -> dict[str, Any]:
    """One crash and one rerun; the figures of that trial."""
    started = time.monotonic()
    csv = write_inputs(folder / "input", rows)
    dest = folder / "dest"
    args = emulator_args(max_concurrent=8, generation_seconds=1.0, generation_jitter=0.3)
    with Emulator(args, folder / "emulator") as emulator:
        env = {**client_env(emulator.url), "PREFECT_HOME": str(homes.new(f"trial-{number}"))}
        env.pop("I2V_SUPERVISOR_PID", None)
        if kill == "run":
            env["I2V_SUPERVISED"] = "1"
        else:
            env.pop("I2V_SUPERVISED", None)
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
            "--unknown-grace",
            str(UNKNOWN_GRACE_S),
        ]
        target = rng.randint(1, rows)
        with (folder / "run.log").open("ab") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + 300
            while emulator.stats()["creates"] < target and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.5))
            processes = _tree(process.pid)
            killed_after = emulator.stats()["creates"]
            killed_at = time.monotonic()
            with contextlib.suppress(ProcessLookupError):
                if kill == "command":
                    os.kill(process.pid, signal.SIGKILL)
                else:
                    os.killpg(process.pid, signal.SIGKILL)
            process.wait(60)
            left = _left(processes, killed_at + LEFT_AFTER_S)
            ended_s = None if left else round(time.monotonic() - killed_at, 1)
            creates_after = emulator.stats()["creates"] - killed_after
            for proc in left:  # so that the rerun does not overlap them
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            # Run again, and a second run of the same command at the same time.
            again = [
                subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
                for _ in range(2)
            ]
            exits = [process.wait(600) for process in again]
        stats = emulator.stats()
    frame = pd.read_parquet(dest / "manifest.parquet")
    completed = int((frame["status"] == "completed").sum())
    unknown = int((frame["error_kind"] == "submit_unknown").sum())
    return {
        "trial": number,
        "kill": kill,
        "killed_after_creates": killed_after,
        "processes_left_after_kill": len(left),
        "run_ended_s": ended_s,
        "creates_after_kill": creates_after,
        "rerun_exits": exits,
        "billed_twice": stats["billed_twice"],
        "rows_lost": rows - int(frame["row_key"].nunique()),
        "rows_completed": completed,
        "rows_submit_unknown": unknown,
        "jobs_made": sum(stats["jobs"].values()),
        "wall_s": round(time.monotonic() - started, 1),
    }


def disk_trial(number: int, folder: Path, homes: PrefectHomes, rows: int) -> dict[str, Any]:
    """A run into a nearly full destination, then a plain rerun once space is freed; the figures."""
    started = time.monotonic()
    csv = write_inputs(folder / "input", rows)
    disk = folder / "disk"
    disk.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        return {"trial": number, "skipped": f"no tmpfs: {mounted.stderr.strip()}"}
    try:
        dest = disk / "dest"
        dest.mkdir()
        filler = disk / "filler.bin"
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        filler.write_bytes(b"\0" * max(0, free - DISK_LEFT_BYTES))
        args = emulator_args(max_concurrent=8, generation_seconds=0.5, generation_jitter=0.3)
        with Emulator(args, folder / "emulator") as emulator:
            env = {**client_env(emulator.url), "PREFECT_HOME": str(homes.new(f"disk-{number}"))}
            env.pop("I2V_SUPERVISED", None)
            command = [*i2v_command(), "run", str(csv), "--dest", str(dest), "--poll-interval", "0.2"]
            with (folder / "run.log").open("ab") as out:
                full = subprocess.run(
                    command, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=600, check=False, cwd=folder
                )
                jobs_when_full = sum(emulator.stats()["jobs"].values())
                filler.unlink()
                rerun = subprocess.run(
                    command, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=600, check=False, cwd=folder
                )
            stats = emulator.stats()
        frame = pd.read_parquet(dest / "manifest.parquet")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    return {
        "trial": number,
        "full_exit": full.returncode,
        "rerun_exit": rerun.returncode,
        "jobs_when_full": jobs_when_full,
        "jobs_made": sum(stats["jobs"].values()),
        "billed_twice": stats["billed_twice"],
        "rows_lost": rows - int(frame["row_key"].nunique()),
        "rows_completed": int((frame["status"] == "completed").sum()),
        "rows_submit_unknown": int((frame["error_kind"] == "submit_unknown").sum()),
        "wall_s": round(time.monotonic() - started, 1),
    }


def _tree(pid: int) -> list[psutil.Process]:
    """Process ``pid`` and all its descendants, as they are now."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _left(processes: list[psutil.Process], deadline: float) -> list[psutil.Process]:
    """Those of ``processes`` still running at ``deadline`` (returns as soon as none is)."""
    while True:
        alive = [proc for proc in processes if _alive(proc)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--rows", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="three trials")
    parser.add_argument(
        "--kill",
        choices=[*KILLS, "mixed"],
        default="mixed",
        help="what each trial kills (see above); mixed: one of them per trial, at random",
    )
    parser.add_argument(
        "--disk-trials", type=int, default=2, help="trials into a nearly full tmpfs (needs root; default 2)"
    )
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
            kill = rng.choice(KILLS) if args.kill == "mixed" else args.kill
            result = trial(number, folder / f"trial-{number}", homes, args.rows, kill, rng)
            log(f"trial {number}: {result}")
            results.append(result)
        disks = []
        for number in range(0 if args.quick else args.disk_trials):
            result = disk_trial(number, folder / f"disk-{number}", homes, args.rows)
            log(f"disk trial {number}: {result}")
            disks.append(result)
    ran = [r for r in disks if "skipped" not in r]
    emit(
        {
            "bench": "durability",
            "trials": trials,
            "rows_per_trial": args.rows,
            "disk_trials": len(ran),
            "duplicate_jobs": sum(r["billed_twice"] for r in [*results, *ran]),
            "rows_lost": sum(r["rows_lost"] for r in [*results, *ran]),
            "rows_completed_after_faults": sum(r["rows_completed"] for r in [*results, *ran]),
            "rows_submit_unknown": sum(r["rows_submit_unknown"] for r in [*results, *ran]),
            "processes_left_after_kill": sum(r["processes_left_after_kill"] for r in results),
            "kills": {kill: sum(r["kill"] == kill for r in results) for kill in KILLS},
            "wall_s": round(time.monotonic() - started, 1),
            "per_trial": results,
            "per_disk_trial": disks,
        },
        args.out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
