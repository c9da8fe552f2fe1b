"""Scale-out: the fan-out flow on one worker, then on two, then on two losing one, on a real Prefect server.

    python -m bench.scaleout [--rows 400] [--rows-per-shard 50] [--quick]

One ``prefect server start`` on PostgreSQL (fresh PREFECT_HOME and database, loopback)
set up as deployments/README.md's "Scaling out" says (``deployments/deploy.py``: pool, shared
concurrency limit, lost-run automation, deployments); then for each side (1 worker, 2
workers, 2 workers of which one is lost) a fresh emulator with ample slots, that many
``deployments/worker.sh`` processes (each taking ``--worker-limit`` flow runs at once; the
parent takes one of them), and one run of the ``fanout`` deployment into a fresh folder.
On the ``lost`` side, once a shard runs on the worker that does not hold the parent and
``--lose-after`` jobs were created, that worker and its flow runs are killed at once (as
when a machine dies); nothing is typed after that.
Figures per side: rows per second (the parent run's start to its end; and the emulator's
first create to its last download), how the shards spread over the workers (from the
workers' logs), the time from the parent's start to the emulator's first create, and on
the ``lost`` side the time from the kill to the parent's end, the shards run again and
the jobs paid twice. Progress goes to stderr; one JSON object is the last line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Any

if not __package__:  # run as a file: python bench/scaleout.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    API_KEY,
    Emulator,
    emit,
    emulator_args,
    exit_on_sigterm,
    log,
    manifest_counts,
    ratio,
    rounded,
    work_folder,
    write_inputs,
)
from tests.cluster import Postgres, Server, Worker, prefect_env, run_command, stop_together

LIMIT_NAME = "bench-provider"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scaleout", description="Rows per second of the fan-out flow on one and on two workers."
    )
    parser.add_argument("--rows", type=int, help="rows in the CSV (default: 400; --quick: 120)")
    parser.add_argument("--rows-per-shard", type=int, help="rows per shard (default: 50; --quick: 20)")
    parser.add_argument("--quick", action="store_true", help="smoke run with 120 rows in shards of 20")
    parser.add_argument(
        "--workers", default="1,2,lost", help="sides to run, in order: worker counts, or `lost` (default: 1,2,lost)"
    )
    parser.add_argument("--lose-after", type=int, default=40, help="jobs created before a worker is lost (default: 40)")
    parser.add_argument(
        "--lost-after-s", type=float, default=60.0, help="heartbeats missing this long crash a run (default: 60)"
    )
    parser.add_argument("--worker-limit", type=int, default=3, help="flow runs per worker at once (default: 3)")
    parser.add_argument("--max-in-flight", type=int, default=16, help="each child's admission limit (default: 16)")
    parser.add_argument("--slots", type=int, default=64, help="emulator slots and shared limit (default: 64)")
    parser.add_argument("--generation-seconds", type=float, default=1.0, help="emulator job time (default: 1.0)")
    parser.add_argument("--poll-interval", type=float, default=0.25, help="given to the flow (default: 0.25)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds a side may take (default: 1800)")
    parser.add_argument("--work-dir", type=Path, help="keep inputs, outputs and logs here (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    parser.add_argument("--out", type=Path, help="also write the JSON figures to this file")
    args = parser.parse_args(argv)
    args.rows = args.rows or (120 if args.quick else 400)
    args.rows_per_shard = args.rows_per_shard or (20 if args.quick else 50)
    return args


def run_side(
    args: argparse.Namespace, server: Server, root: Path, csv_path: Path, side: str, *, deploy: bool
) -> dict[str, Any]:
    """One fan-out run with ``side`` workers (``lost``: two, one lost) against a fresh emulator; its figures."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    lose_one = side == "lost"
    workers = 2 if lose_one else int(side)
    folder = root / (f"{side}-worker" if not lose_one else "lost-worker")
    emu_args = emulator_args(max_concurrent=args.slots, generation_seconds=args.generation_seconds)
    with Emulator(emu_args, folder / "emulator") as emulator:
        env = prefect_env(
            server.home,
            server.api_url,
            {
                "AIMLAPI_BASE_URL": emulator.url,
                "AIMLAPI_API_KEY": API_KEY,
                "I2V_CONCURRENCY_LIMIT": LIMIT_NAME,
                "I2V_PROVIDER_SLOTS": str(args.slots),
                "I2V_HEARTBEAT_S": "30",
                "I2V_LOST_AFTER_S": str(args.lost_after_s),
            },
        )
        if deploy:
            log("deploying (deployments/deploy.py)")
            run_command([sys.executable, "deployments/deploy.py"], env, root / "deploy.log")
        started: list[Worker] = []
        try:
            for number in range(workers):
                started.append(Worker(f"bench-worker-{number + 1}", env, folder, limit=args.worker_limit))
            for worker in started:
                worker.wait_started()
            log(f"{workers} worker(s) up; running the fan-out")
            dest = folder / "dest"
            parameters = {
                "input": str(csv_path),
                "dest": str(dest),
                "rows_per_shard": args.rows_per_shard,
                "max_in_flight": args.max_in_flight,
                "poll_interval_s": args.poll_interval,
                "job_timeout_s": 600.0,
                "check_every_s": 1.0,
            }
            lost: dict[str, Any] = {}
            with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
                parent_id = asyncio.run(_start(parameters))
                if lose_one:
                    lost = _lose_a_worker(started, str(parent_id), emulator, args.lose_after)
                parent, children = asyncio.run(_wait(parent_id, args.timeout))
            stats = emulator.stats()
            if lose_one:
                lost["kill_to_parent_end_s"] = rounded(parent.end_time.timestamp() - lost.pop("killed_at"), 1)
                lost["shards_run_again"] = sum(1 for child in children if child.run_count > 1)
                lost["billed_twice"] = stats.get("billed_twice")
            spread = {worker.name: len(worker.submitted() & {str(c.id) for c in children}) for worker in started}
        finally:
            stop_together(started)
    manifest = manifest_counts(dest)
    parent_s = (parent.end_time - parent.start_time).total_seconds() if parent.end_time and parent.start_time else None
    first_create = stats.get("first_create_at")
    last_download = stats.get("last_download_at")
    to_first_create = first_create - parent.start_time.timestamp() if first_create and parent.start_time else None
    makespan = last_download - first_create if first_create and last_download else None
    child_starts = sorted((c.start_time - parent.start_time).total_seconds() for c in children if c.start_time)
    return {
        "workers": workers,
        **({"lost_worker": lost} if lose_one else {}),
        "state": parent.state.type.value if parent.state else None,
        "rows_completed": (manifest or {}).get("completed", 0),
        "shards": len(children),
        "shards_per_worker": spread,
        "parent_run_s": rounded(parent_s, 2),
        "rows_per_s": ratio(args.rows, parent_s, 2),
        "rows_per_s_first_create_to_last_download": ratio(args.rows, makespan, 2),
        "time_to_first_create_s": rounded(to_first_create, 2),
        "parent_scheduled_to_start_s": rounded(
            (parent.start_time - parent.created).total_seconds() if parent.created and parent.start_time else None, 2
        ),
        "child_start_offsets_s": [rounded(t, 1) for t in child_starts],
        "emulator": {k: stats.get(k) for k in ("creates", "downloads_served", "max_generating_seen", "responses")},
    }


async def _start(parameters: dict[str, Any]) -> Any:
    from prefect.deployments.flow_runs import arun_deployment

    parent = await arun_deployment("fanout/fanout", parameters=parameters, timeout=0, as_subflow=False)
    return parent.id


def _lose_a_worker(workers: list[Worker], parent_id: str, emulator: Emulator, after_jobs: int) -> dict[str, Any]:
    """Kill, with every process it started, a worker that runs a shard but not the parent, once jobs were made."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        created = emulator.stats().get("creates", 0)
        for worker in workers:
            if parent_id not in worker.submitted() and worker.submitted() and created >= after_jobs:
                killed = worker.kill_everything()
                log(f"killed {worker.name} and {killed - 1} flow run process(es) after {created} jobs")
                return {"worker": worker.name, "killed_at": time.time(), "jobs_before": created}
        time.sleep(0.2)
    raise TimeoutError("no worker other than the parent's ran a shard")


async def _wait(parent_id: Any, timeout_s: float) -> tuple[Any, list[Any]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    deadline = time.monotonic() + timeout_s
    async with get_client() as client:
        while True:
            parent = await client.read_flow_run(parent_id)
            if parent.state is not None and parent.state.is_final() and parent.end_time is not None:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the fan-out was still {parent.state} after {timeout_s:.0f} s")
            await asyncio.sleep(0.5)
        children = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id])),
            limit=200,
        )
    return parent, list(children)


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    sides = [side.strip() for side in args.workers.split(",") if side.strip()]
    result: dict[str, Any] = {
        "bench": "scaleout",
        "quick": args.quick,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "rows": args.rows,
        "rows_per_shard": args.rows_per_shard,
        "worker_limit": args.worker_limit,
        "max_in_flight": args.max_in_flight,
        "emulator_slots": args.slots,
        "generation_s": args.generation_seconds,
        "sides": {},
    }
    with work_folder(args.work_dir, "i2v-bench-scaleout-", keep=args.keep) as root:
        csv_path = write_inputs(root / "input", args.rows)
        database = Postgres()
        server = Server(root / "prefect-home", root, database_url=database.url)
        try:
            log(f"prefect server healthy after {server.wait_healthy():.1f} s")
            for index, name in enumerate(sides):
                side = run_side(args, server, root, csv_path, name, deploy=index == 0)
                result["sides"][name] = side
                log(
                    f"{name} worker(s): {side['state']}, {side['rows_completed']}/{args.rows} rows,"
                    f" {side['rows_per_s']} rows/s, shards {side['shards_per_worker']},"
                    f" first create {side['time_to_first_create_s']} s after the parent started"
                    + (f"; worker lost: {side['lost_worker']}" if "lost_worker" in side else "")
                )
        finally:
            server.stop()
            database.stop()
    figures = result["sides"]
    if "1" in figures and "2" in figures:
        result["speedup_2_over_1"] = ratio(figures["2"]["rows_per_s"], figures["1"]["rows_per_s"], 2)
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
