"""Scale-out on a real Prefect server: work pool, shared concurrency limit, two workers, S3, the emulator.

One server, one emulator and two workers serve the whole module, set up exactly as the
deployments/README.md's "Scaling out" says: PostgreSQL, ``prefect server start`` on it, ``python -m
orchestration.secrets`` (the API key into a Secret block, so the workers' environment
has none), ``deployments/deploy.py`` (what ``make deploy`` runs: pool, limit, lost-run
automation, deployments from ``prefect.yaml``), then one worker with
``deployments/worker.sh`` and one with ``prefect worker start --pool i2v`` as Prefect
prints it. Everything is stopped by process id at the end, whatever happened.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import boto3
import pandas as pd
import pytest
from PIL import Image

from tests.cluster import REPO, Postgres, Server, Worker, prefect_env, run_command, stop_together
from tests.emulated import Emulator, emulator

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(900)]

#: Jobs all workers together may keep at the provider (the global concurrency limit).
SHARED_SLOTS = 4
#: Jobs the emulator would run at once: far above the limit, so only the limit holds them back.
EMULATOR_SLOTS = 16
#: Each worker's own admission limit: also above the shared one.
MAX_IN_FLIGHT = 8
ROWS, ROWS_PER_SHARD = 40, 10
SHARDS = ROWS // ROWS_PER_SHARD
#: Flow runs each worker runs at once: below the shard count, so one worker cannot take them all.
WORKER_LIMIT = 3
LIMIT_NAME = "aimlapi-test"
WORKERS = ("worker-a", "worker-b")
#: How often the server's scheduler looks for runs to create (Prefect's default is 60 s).
SCHEDULER_LOOP_S = 2.0
#: The inbox the deployed cron schedule looks at; tests that start inbox runs by hand use another.
SCHEDULED_INBOX = "scheduled-inbox"
#: Heartbeats of every flow run (Prefect's shortest), and how long without one makes a run lost.
HEARTBEAT_S, LOST_AFTER_S = 30, 45


@dataclass
class Cluster:
    server: Server
    workers: list[Worker]
    emulator: Emulator
    s3: Any
    bucket: str
    folder: Path
    crons: dict[str, str]
    env: dict[str, str]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> Iterator[Cluster]:
    """The server, the emulator, the deployments and two workers, for every test of the module."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    t_setup = time.monotonic()
    folder = tmp_path_factory.mktemp("cluster")
    aws = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")  # fmt: skip
    bucket = f"i2v-cluster-{int(time.time())}"
    s3.create_bucket(Bucket=bucket)
    # The nightly schedule will not fall due while the tests run (twelve hours away); the
    # inbox is looked at every minute, as an operator's would be, on a prefix of its own.
    later = (datetime.now(UTC).hour + 12) % 24
    crons = {"nightly": f"7 {later} * * *", "inbox": "* * * * *"}
    with ExitStack() as stack:
        # Stopped last (exit callbacks run in reverse): workers first, then the server.
        database = Postgres()
        stack.callback(database.stop)
        server = Server(folder / "prefect-home", folder, scheduler_loop_s=SCHEDULER_LOOP_S, database_url=database.url)
        stack.callback(server.stop)
        emu = stack.enter_context(emulator(max_concurrent=EMULATOR_SLOTS, generation_seconds=0.4, short_side=16, fps=1))
        print(f"server healthy after {server.wait_healthy():.1f} s")
        env = prefect_env(
            server.home,
            server.api_url,
            {
                **aws,
                "AIMLAPI_BASE_URL": emu.base_url,
                "I2V_CONCURRENCY_LIMIT": LIMIT_NAME,
                "I2V_PROVIDER_SLOTS": str(SHARED_SLOTS),
                "I2V_NIGHTLY_INPUT": "i2v/demo/sample.csv",
                "I2V_NIGHTLY_DEST": f"s3://{bucket}/nightly",
                "I2V_NIGHTLY_CRON": crons["nightly"],
                "I2V_INBOX": f"s3://{bucket}/{SCHEDULED_INBOX}",
                "I2V_INBOX_DEST": f"s3://{bucket}/{SCHEDULED_INBOX}-out",
                "I2V_INBOX_CRON": crons["inbox"],
                "I2V_HEARTBEAT_S": str(HEARTBEAT_S),
                "I2V_LOST_AFTER_S": str(LOST_AFTER_S),
            },
        )
        python = str(REPO / ".venv" / "bin" / "python")
        run_command(
            [python, "-m", "orchestration.secrets"], {**env, "AIMLAPI_API_KEY": emu.api_key}, folder / "secret.log"
        )
        run_command([python, "deployments/deploy.py"], env, folder / "deploy.log")
        workers: list[Worker] = []
        stack.callback(stop_together, workers)
        for name in WORKERS:
            # The second is started as `prefect deploy` says, with no I2V_HOME: the code is found anyway.
            workers.append(Worker(name, env, folder, limit=WORKER_LIMIT, plain=name == WORKERS[1]))
        for worker in workers:
            worker.wait_started()
        print(f"cluster ready {time.monotonic() - t_setup:.1f} s after start")
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield Cluster(server, workers, emu, s3, bucket, folder, crons, env)


@dataclass
class Fanout:
    parent: Any
    children: list[Any]
    creates_after: int
    wall_s: float


@pytest.fixture(scope="module")
def fanout_run(cluster: Cluster) -> Fanout:
    """The fan-out flow run on the pool: 40 rows in 4 shards, into S3."""
    csv = _write_input(cluster.folder / "input", ROWS)
    started = time.monotonic()
    parent = _run(
        "fanout/fanout",
        {
            "input": str(csv),
            "dest": f"s3://{cluster.bucket}/fanout",
            "rows_per_shard": ROWS_PER_SHARD,
            "max_in_flight": MAX_IN_FLIGHT,
            "poll_interval_s": 0.2,
            "job_timeout_s": 120.0,
            "check_every_s": 1.0,
        },
    )
    wall_s = time.monotonic() - started
    return Fanout(parent, _children(), cluster.emulator.stats()["creates"], wall_s)


def test_fanout_spreads_shards_over_both_workers_under_one_shared_limit(cluster: Cluster, fanout_run: Fanout) -> None:
    """Both workers run shards; the merged manifest has each row once; jobs never exceed the shared limit."""
    parent, children = fanout_run.parent, fanout_run.children
    assert parent.state.type.value == "COMPLETED", parent.state.message
    assert len(children) == SHARDS
    assert {child.state.type.value for child in children} == {"COMPLETED"}
    child_ids = {str(child.id) for child in children}
    by_worker = {worker.name: worker.submitted() & child_ids for worker in cluster.workers}
    print(f"fan-out wall {fanout_run.wall_s:.1f} s; shards per worker: { ({k: len(v) for k, v in by_worker.items()}) }")
    t0 = parent.start_time
    spans = [f"{(c.start_time - t0).total_seconds():.0f}-{(c.end_time - t0).total_seconds():.0f}" for c in children]
    ended = (parent.end_time - t0).total_seconds()
    print(f"child runs (s after the parent started): {', '.join(spans)}; parent ended {ended:.0f}")
    assert all(by_worker.values()), f"each worker ran some shards: {by_worker}"
    assert set.union(*by_worker.values()) == child_ids
    assert sum(len(taken) for taken in by_worker.values()) == SHARDS, "no shard ran on two workers"

    (run,) = {child.parameters["run"]["name"] for child in children}
    frame = _parquet(cluster, f"fanout/runs/{run}/manifest.parquet")
    assert len(frame) == ROWS
    assert sorted(frame["row_index"].tolist()) == list(range(ROWS))
    assert set(frame["status"]) == {"completed"}
    assert set(frame["run"]) == {run}, "children wrote their parts under the parent's run"
    assert set(frame["flow_run_id"]) == child_ids

    stats = cluster.emulator.stats()
    assert 1 <= stats["max_generating_seen"] <= SHARED_SLOTS, stats["max_generating_seen"]
    assert stats["creates"] == ROWS, "every row created once, none refused"
    assert _limit()["active_slots"] == 0, "every slot was given back"
    everything = json.dumps([parent.parameters, *(child.parameters for child in children)], default=str)
    assert cluster.emulator.api_key not in everything


def test_retried_parent_starts_no_new_children(cluster: Cluster, fanout_run: Fanout) -> None:
    """`prefect flow-run retry` of the finished parent finds its children by idempotency key: no new runs or creates."""
    parent_id = fanout_run.parent.id
    prefect = str(REPO / ".venv" / "bin" / "prefect")
    run_command([prefect, "flow-run", "retry", str(parent_id)], cluster.env, cluster.folder / "retry.log")
    again = asyncio.run(_wait_final(parent_id))
    assert again.state.type.value == "COMPLETED", again.state.message
    assert again.run_count == 2
    children = _children()
    assert {child.id for child in children} == {child.id for child in fanout_run.children}
    assert [child.run_count for child in children] == [1] * SHARDS
    assert cluster.emulator.stats()["creates"] == fanout_run.creates_after
    assert len(_parquet(cluster, "fanout/manifest.parquet")) == ROWS


def test_deployments_come_from_prefect_yaml_with_schedules_and_no_paths_or_secrets(cluster: Cluster) -> None:
    """The scheduled runs exist with their crons; the pull step names no path; job variables hold no secret."""
    deployments = asyncio.run(_deployments())
    assert {"generate-videos/nightly", "fanout/fanout", "fanout-shard/generate-shard", "inbox/inbox"} <= set(
        deployments
    )
    nightly = deployments["generate-videos/nightly"]
    assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in nightly.schedules] == [
        (cluster.crons["nightly"], "UTC", True)
    ]
    assert nightly.parameters == {"input": "i2v/demo/sample.csv", "dest": f"s3://{cluster.bucket}/nightly"}
    inbox = deployments["inbox/inbox"]
    assert [(s.schedule.cron, s.active) for s in inbox.schedules] == [(cluster.crons["inbox"], True)]
    for deployment in deployments.values():
        assert deployment.work_pool_name == "i2v"
        assert deployment.pull_steps == [{"orchestration.code_folder.code_folder": {}}]
        assert deployment.job_variables["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == str(HEARTBEAT_S)
        assert deployment.job_variables["env"]["I2V_CONCURRENCY_LIMIT"] == LIMIT_NAME
        assert cluster.emulator.api_key not in json.dumps(deployment.job_variables)
    assert _limit()["limit"] == SHARED_SLOTS


def test_a_schedule_creates_a_run_that_a_worker_completes(cluster: Cluster) -> None:
    """The server's scheduler creates a run of a scheduled deployment by itself, and a worker runs it to Completed."""
    dest = f"s3://{cluster.bucket}/scheduled-nightly"
    started = time.monotonic()
    run, created_s = asyncio.run(_first_scheduled_run("generate-videos/nightly", dest))
    done_s = time.monotonic() - started
    print(f"scheduled run created {created_s:.1f} s after its schedule, Completed after {done_s:.1f} s")
    assert run.auto_scheduled, "the run was created by the scheduler, not by hand"
    assert run.state.type.value == "COMPLETED", run.state.message
    assert run.parameters["dest"] == dest
    (table,) = (key for key in _keys(cluster, "scheduled-nightly/runs/") if key.endswith("/manifest.parquet"))
    frame = _parquet(cluster, table)
    assert sorted(frame["row_index"].tolist()) == list(range(len(pd.read_csv(REPO / "i2v" / "demo" / "sample.csv"))))
    assert "bulk DML" not in cluster.server.text(), "the scheduler loop ran without errors"


async def _first_scheduled_run(name: str, dest: str) -> tuple[Any, float]:
    """Give deployment ``name`` a schedule due in seconds; its run when final, and when it was created."""
    from datetime import timedelta

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.schedules import IntervalSchedule

    async with get_client() as client:
        deployment = await client.read_deployment_by_name(name)
        started = time.monotonic()
        due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20)
        (schedule,) = await client.create_deployment_schedules(
            deployment.id,
            [
                DeploymentScheduleCreate(
                    # Due soon (later than the scheduler's next loops), then not again for an hour.
                    schedule=IntervalSchedule(interval=timedelta(hours=1), anchor_date=due),
                    max_scheduled_runs=1,
                    parameters={"dest": dest, "poll_interval_s": 0.2},
                )
            ],
        )
        mine = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))

        def ours(run: Any) -> bool:
            return bool(run.auto_scheduled) and run.parameters.get("dest") == dest

        deadline = time.monotonic() + 120
        try:
            # The deployment's own cron has runs scheduled hours ahead: only this schedule's runs count.
            while not (runs := [r for r in await client.read_flow_runs(deployment_filter=mine) if ours(r)]):
                assert time.monotonic() < deadline, "the scheduler created no run in 120 s"
                await asyncio.sleep(0.5)
            created_s = time.monotonic() - started
            # The scheduler creates a few runs ahead (hourly after this one); the one due now is the test's.
            (run,) = (run for run in runs if run.expected_start_time == due)
            # Deleting a schedule deletes its runs not yet started: keep it until a worker has this one.
            while (await client.read_flow_run(run.id)).start_time is None:
                assert time.monotonic() < deadline + 120, "no worker started the scheduled run in 120 s"
                await asyncio.sleep(0.5)
        finally:
            await client.delete_deployment_schedule(deployment.id, schedule.id)
    return await _wait_final(run.id), created_s


def test_the_inbox_schedule_picks_up_a_dropped_file_by_itself(cluster: Cluster) -> None:
    """A CSV dropped into the deployed inbox is generated by a run its cron schedule started, with no command typed."""
    rows = 3
    key = f"{SCHEDULED_INBOX}/_i2v/done/dropped.csv.json"
    creates_before = cluster.emulator.stats()["creates"]
    cluster.s3.put_object(
        Bucket=cluster.bucket, Key=f"{SCHEDULED_INBOX}/dropped.csv", Body=_inbox_csv(rows, "dropped in").encode()
    )
    dropped = time.monotonic()
    deadline = dropped + 240  # a tick a minute, and the run itself
    while not _keys(cluster, key):
        assert time.monotonic() < deadline, "no inbox tick processed the file in 240 s"
        time.sleep(1.0)
    print(f"inbox file done {time.monotonic() - dropped:.1f} s after it was dropped")
    done = json.loads(cluster.s3.get_object(Bucket=cluster.bucket, Key=key)["Body"].read())
    assert done["summary"]["completed"] == rows
    owner = asyncio.run(_wait_final(UUID(done["owner"])))
    assert owner.auto_scheduled, "the tick that took the file was started by the schedule"
    assert owner.state.type.value == "COMPLETED", owner.state.message
    assert cluster.emulator.stats()["creates"] - creates_before == rows
    assert len(_parquet(cluster, f"{SCHEDULED_INBOX}-out/dropped/manifest.parquet")) == rows


def test_inbox_processes_a_dropped_file_once_across_two_overlapping_runs(cluster: Cluster) -> None:
    """Two inbox runs at once: one claims the file and generates it, the other leaves it; it is marked done."""
    rows = 6
    cluster.s3.put_object(Bucket=cluster.bucket, Key="inbox/drop-1.csv", Body=_inbox_csv(rows).encode())
    creates_before = cluster.emulator.stats()["creates"]
    parameters = {
        "inbox": f"s3://{cluster.bucket}/inbox",
        "dest": f"s3://{cluster.bucket}/inbox-out",
        "poll_interval_s": 0.2,
        "job_timeout_s": 120.0,
        "max_in_flight": MAX_IN_FLIGHT,
    }
    first, second, held_creates = asyncio.run(_two_inbox_runs_overlapping(parameters, cluster.emulator))

    assert held_creates == creates_before, "no create while the test held every shared slot"
    for run in (first, second):
        assert run.state.type.value == "COMPLETED", run.state.message
    assert max(first.start_time, second.start_time) < min(first.end_time, second.end_time), "the two runs overlapped"
    assert _keys(cluster, "inbox/_i2v/claims/") == ["inbox/_i2v/claims/drop-1.csv/0001.json"]
    marker = cluster.s3.get_object(Bucket=cluster.bucket, Key="inbox/_i2v/done/drop-1.csv.json")
    done = json.loads(marker["Body"].read())
    assert done["owner"] in {str(first.id), str(second.id)}
    assert done["summary"]["completed"] == rows
    assert cluster.emulator.stats()["creates"] - creates_before == rows, "the file's rows were generated once"
    assert len(_parquet(cluster, "inbox-out/drop-1/manifest.parquet")) == rows
    assert _limit()["active_slots"] == 0


async def _two_inbox_runs_overlapping(parameters: dict[str, Any], emu: Emulator) -> tuple[Any, Any, int]:
    """Both inbox runs when ended, and the creates seen while the test held every shared slot.

    Holding the slots until both runs have started means the run that claims the file
    cannot finish (it waits for a slot to create) before the other has looked at it.
    """
    from prefect.client.orchestration import get_client
    from prefect.deployments.flow_runs import arun_deployment

    from orchestration.shared_slots import GlobalLimitSlots

    held = GlobalLimitSlots(LIMIT_NAME)
    for _ in range(SHARED_SLOTS):
        await held.acquire()
    try:
        started = [
            await arun_deployment("inbox/inbox", parameters=parameters, timeout=0, as_subflow=False) for _ in range(2)
        ]
        deadline = time.monotonic() + 120
        async with get_client() as client:
            while True:
                runs = [await client.read_flow_run(run.id) for run in started]
                if all(run.start_time is not None for run in runs) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        creates = int((await asyncio.to_thread(emu.stats))["creates"])
    finally:
        await held.aclose()
    first, second = [await _wait_final(run.id) for run in started]
    return first, second, creates


def test_cancelling_a_run_from_prefect_stops_it_and_writes_its_manifest(cluster: Cluster) -> None:
    """A cancelled flow run sends nothing more, writes every row to its manifest, keeps its jobs and ends Cancelled."""
    rows = 300
    # Prompts of their own: the emulator counts a body it has made a job for before as billed twice.
    csv = _write_input(cluster.folder / "cancel", rows, take="the cancelled take")
    before = cluster.emulator.stats()
    parameters = {
        "input": str(csv),
        "dest": f"s3://{cluster.bucket}/cancelled",
        "rows_per_shard": 100,
        "max_in_flight": 2,
        "poll_interval_s": 0.2,
        "job_timeout_s": 120.0,
    }
    run, created_at_cancel = asyncio.run(_cancel_once_working("generate-videos/nightly", parameters, cluster.emulator))
    ended = asyncio.run(_wait_final(run.id))
    assert ended.state.type.value == "CANCELLED", f"{ended.state.type.value}: {ended.state.message}"
    # The worker marks the run Cancelled again (forced, with its own message) once the
    # process has exited, so the run's own word is in its history, not always its last state.
    assert any(
        state.type.value == "CANCELLED" and "manifest written" in (state.message or "")
        for state in asyncio.run(_states(run.id))
    ), "the run ended Cancelled saying its manifest was written"
    time.sleep(2.0)
    after = cluster.emulator.stats()
    created = after["creates"] - before["creates"]
    assert created_at_cancel <= created < rows, "the run stopped sending; jobs started are kept"
    assert after["billed_twice"] == before["billed_twice"]

    frame = _parquet(cluster, "cancelled/manifest.parquet")
    assert sorted(frame["row_index"].tolist()) == list(range(rows)), "every row once"
    statuses = frame["status"].value_counts().to_dict()
    assert statuses.get("completed", 0) >= 1, statuses
    assert statuses.get("skipped", 0) >= 1, statuses
    assert set(statuses) <= {"completed", "skipped"}, statuses
    skipped = frame[frame["status"] == "skipped"]
    assert set(skipped["error_kind"]) == {"stopped"}
    assert skipped["error_message"].str.contains("SIGTERM").all()
    jobs = frame["generation_id"].dropna()
    assert jobs.is_unique
    assert len(jobs) == created, "every job the provider made is in the manifest, once"
    assert cluster.emulator.api_key not in json.dumps(ended.parameters, default=str)


async def _cancel_once_working(name: str, parameters: dict[str, Any], emu: Emulator) -> tuple[Any, int]:
    """Start a run of deployment ``name``, cancel it (as the UI does) once it has made a few jobs."""
    from prefect.client.orchestration import get_client
    from prefect.deployments.flow_runs import arun_deployment
    from prefect.states import Cancelling

    before = int((await asyncio.to_thread(emu.stats))["creates"])
    run = await arun_deployment(name, parameters=parameters, timeout=0, as_subflow=False)
    deadline = time.monotonic() + 180
    while (created := int((await asyncio.to_thread(emu.stats))["creates"]) - before) < 6:
        assert time.monotonic() < deadline, "the run never started creating jobs"
        await asyncio.sleep(0.2)
    async with get_client() as client:
        await client.set_flow_run_state(run.id, Cancelling(message="cancelled by the test"))
    return run, created


def test_a_missing_shared_limit_is_a_clear_configuration_error(cluster: Cluster) -> None:
    """Naming a concurrency limit the server lacks fails the create's admission with how to create it."""
    from i2v.errors import ConfigError
    from orchestration.shared_slots import GlobalLimitSlots

    missing = GlobalLimitSlots("no-such-limit")
    with pytest.raises(ConfigError, match="prefect gcl create no-such-limit"):
        asyncio.run(missing.acquire())
    assert missing.held == 0


def test_a_fanout_survives_losing_a_worker_machine_mid_run(cluster: Cluster) -> None:
    """One worker and its flow runs killed at once mid fan-out: its shards run again elsewhere; every row once."""
    rows = 160
    csv = _write_input(cluster.folder / "lost", rows, take="the take that lost a worker")
    known = {child.id for child in _children()}
    before = cluster.emulator.stats()
    parameters = {
        "input": str(csv),
        "dest": f"s3://{cluster.bucket}/lost",
        "rows_per_shard": 40,
        "max_in_flight": MAX_IN_FLIGHT,
        "poll_interval_s": 0.2,
        "job_timeout_s": 300.0,
        "check_every_s": 1.0,
    }
    parent_id = asyncio.run(_start("fanout/fanout", parameters))
    victim, lost_at, killed = _kill_a_shard_worker(cluster, parent_id, known, before["creates"])
    print(f"killed {victim.name} and its {killed - 1} flow run process(es) at once")
    try:
        parent = asyncio.run(_wait_final(parent_id, timeout_s=600.0))
    except TimeoutError:
        for child in _children():
            if child.id not in known:
                print(f"shard {child.name}: {child.state.name} (tries {child.run_count}) {child.state.message or ''}")
        raise
    recovered_s = time.monotonic() - lost_at
    assert parent.state.type.value == "COMPLETED", f"{parent.state.name}: {parent.state.message}"
    children = [child for child in _children() if child.id not in known]
    again = [child for child in children if child.run_count > 1]
    crashed = {child.id for child in again if any(s.type.value == "CRASHED" for s in asyncio.run(_states(child.id)))}
    print(f"worker lost: parent Completed {recovered_s:.0f} s after the kill; shards run again: {len(again)}")
    assert again, "the lost shards ran again"
    assert crashed == {child.id for child in again}, "each shard that ran again had been marked Crashed first"
    assert all(child.state.type.value == "COMPLETED" for child in children)

    (run,) = {child.parameters["run"]["name"] for child in children}
    frame = _parquet(cluster, f"lost/runs/{run}/manifest.parquet")
    assert sorted(frame["row_index"].tolist()) == list(range(rows)), "every row once"
    after = cluster.emulator.stats()
    assert after["billed_twice"] == before["billed_twice"], "no job paid twice"
    jobs = frame["generation_id"].dropna()
    assert jobs.is_unique
    # A create in flight when its process died is unknown (never sent again blindly): the row says so.
    assert set(frame["status"]) <= {"completed", "failed"}
    assert set(frame.loc[frame["status"] == "failed", "error_kind"]) <= {"submit_unknown"}
    assert len(jobs) <= after["creates"] - before["creates"] <= rows, "at most one job per row"


async def _start(name: str, parameters: dict[str, Any]) -> UUID:
    from prefect.deployments.flow_runs import arun_deployment

    run = await arun_deployment(name, parameters=parameters, timeout=0, as_subflow=False)
    return UUID(str(run.id))


def _kill_a_shard_worker(
    cluster: Cluster, parent_id: UUID, known: set[UUID], creates_before: int
) -> tuple[Worker, float, int]:
    """Wait until the worker not running the parent is generating a shard, then kill it and its flow runs."""
    deadline = time.monotonic() + 180
    while True:
        assert time.monotonic() < deadline, "no worker other than the parent's ran a shard"
        others = [worker for worker in cluster.workers if worker.alive() and str(parent_id) not in worker.submitted()]
        running = {
            str(child.id) for child in _children() if child.id not in known and child.state.type.value == "RUNNING"
        }
        created = cluster.emulator.stats()["creates"] - creates_before
        for worker in others:
            if worker.submitted() & running and created >= 20:
                return worker, time.monotonic(), worker.kill_everything()
        time.sleep(0.2)


# --- helpers ---------------------------------------------------------------------------


def _write_input(folder: Path, rows: int, take: str = "the fanned-out take") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, size, color in (("wide", (64, 36), (200, 80, 20)), ("tall", (36, 64), (20, 80, 200))):
        Image.new("RGB", size, color).save(folder / f"{name}.png")
    csv = folder / "input.csv"
    csv.write_text(
        "image_url,prompt,duration,resolution\n"
        + "".join(f"{('wide', 'tall')[i % 2]}.png,Shot {i} of {take},5,480p\n" for i in range(rows))
    )
    return csv


def _inbox_csv(rows: int, take: str = "over the harbour") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), (30, 150, 150)).save(buffer, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return "image_url,prompt,duration,resolution\n" + "".join(
        f'"{uri}",Inbox shot {i} {take},5,480p\n' for i in range(rows)
    )


def _run(name: str, parameters: dict[str, Any]) -> Any:
    (run,) = asyncio.run(_run_together(name, parameters, 1))
    return run


async def _run_together(name: str, parameters: dict[str, Any], count: int) -> list[Any]:
    from prefect.deployments.flow_runs import arun_deployment

    started = await asyncio.gather(
        *(arun_deployment(name, parameters=parameters, timeout=0, as_subflow=False) for _ in range(count))
    )
    return list(await asyncio.gather(*(_wait_final(run.id) for run in started)))


async def _wait_final(flow_run_id: UUID, timeout_s: float = 300.0) -> Any:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout_s
    async with get_client() as client:
        while True:
            run = await client.read_flow_run(flow_run_id)
            if run.state is not None and run.state.is_final() and run.end_time is not None:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"flow run {flow_run_id} still {run.state} after {timeout_s:.0f} s")
            await asyncio.sleep(0.5)


async def _states(flow_run_id: UUID) -> list[Any]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return list(await client.read_flow_run_states(flow_run_id))


def _children() -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    async def read() -> list[Any]:
        async with get_client() as client:
            return list(
                await client.read_flow_runs(
                    deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["generate-shard"])),
                    sort=FlowRunSort.NAME_ASC,
                )
            )

    return asyncio.run(read())


async def _deployments() -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        found = await client.read_deployments()
        flows = {flow.id: flow.name for flow in await client.read_flows()}
    return {f"{flows[d.flow_id]}/{d.name}": d for d in found}


def _limit() -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    async def read() -> dict[str, Any]:
        async with get_client() as client:
            limit = await client.read_global_concurrency_limit_by_name(LIMIT_NAME)
        return {"limit": limit.limit, "active_slots": limit.active_slots}

    return asyncio.run(read())


def _parquet(cluster: Cluster, key: str) -> pd.DataFrame:
    raw = cluster.s3.get_object(Bucket=cluster.bucket, Key=key)["Body"].read()
    return pd.read_parquet(io.BytesIO(raw))


def _keys(cluster: Cluster, prefix: str) -> list[str]:
    listed = cluster.s3.list_objects_v2(Bucket=cluster.bucket, Prefix=prefix).get("Contents", [])
    return sorted(item["Key"] for item in listed)
