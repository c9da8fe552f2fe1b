"""Set up a Prefect server for i2v-pipeline: the work pool, the shared concurrency limit, the deployments.

``make deploy`` runs this (or ``.venv/bin/python deployments/deploy.py``), against the
server ``PREFECT_API_URL`` names. Running it again updates everything in place.

1. The process work pool ``i2v`` (created if missing).
2. The global concurrency limit every worker's admission control shares (created, or
   its size updated): ``I2V_CONCURRENCY_LIMIT`` slots named, ``I2V_PROVIDER_SLOTS`` big.
3. The automation that marks a flow run of these deployments Crashed once its
   heartbeats stop for ``I2V_LOST_AFTER_S`` (its worker machine was lost): a fan-out
   then runs the lost shard again on another worker. Flow runs send a heartbeat every
   ``I2V_HEARTBEAT_S`` (the deployments' job variables).
4. ``prefect --no-prompt deploy`` of every deployment in ``prefect.yaml`` whose flow
   file exists, with the deploy-time values below in its environment.

Settings (environment; all optional):

==========================  ===================  ==============================================
``I2V_CONCURRENCY_LIMIT``   ``aimlapi``          the shared limit's name
``I2V_PROVIDER_SLOTS``      ``16``               jobs the provider account runs at once
``I2V_NIGHTLY_INPUT``       (schedule inactive)  the scheduled bulk run's CSV (a path on workers)
``I2V_NIGHTLY_DEST``        (schedule inactive)  its destination: ``s3://bucket/prefix`` or a folder
``I2V_NIGHTLY_CRON``        ``0 2 * * *``        when it runs (UTC)
``I2V_INBOX``               (schedule inactive)  the inbox: ``s3://bucket/prefix`` or a folder
``I2V_INBOX_DEST``          (schedule inactive)  where each inbox file's outputs go
``I2V_INBOX_CRON``          ``*/5 * * * *``      how often the inbox is looked at (UTC)
``I2V_HEARTBEAT_S``         ``30``               seconds between a flow run's heartbeats (30 at least)
``I2V_LOST_AFTER_S``        ``90``               heartbeats missing this long: the run is Crashed
==========================  ===================  ==============================================

A schedule is active only when both its input and destination are given, so a first
deploy never starts paid work by itself. Relative paths are relative to the clone on
the worker (``$I2V_HOME``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.exceptions import ObjectNotFound
from prefect.workers.process import ProcessWorker

REPO = Path(__file__).resolve().parent.parent
POOL = "i2v"

DEFAULTS = {
    "I2V_CONCURRENCY_LIMIT": "aimlapi",
    "I2V_PROVIDER_SLOTS": "16",
    "I2V_NIGHTLY_CRON": "0 2 * * *",
    "I2V_INBOX_CRON": "*/5 * * * *",
    "I2V_HEARTBEAT_S": "30",
    "I2V_LOST_AFTER_S": "90",
}
#: The automation that crashes flow runs whose worker was lost; the tag every deployment carries.
LOST_RUNS = "i2v: crash flow runs whose worker was lost"
TAG = "i2v"
#: Events after which a run must show it is alive (a heartbeat, or its end) within the limit.
ARMED = (
    "prefect.flow-run.heartbeat",
    "prefect.flow-run.Pending",
    "prefect.flow-run.Running",
    "prefect.flow-run.Cancelling",
)
#: Names of the states a run of this project may end in, or wait in to run again.
ENDED_NAMES = (
    "Completed",
    "Completed with failures",
    "Cached",
    "Failed",
    "TimedOut",
    "Cancelled",
    "Crashed",
    "AwaitingRetry",
)
#: Prefect's shortest heartbeat interval.
MIN_HEARTBEAT_S = 30
#: Schedule → (its input setting, its destination setting, placeholders when not given).
SCHEDULES = {
    "NIGHTLY": ("I2V_NIGHTLY_INPUT", "I2V_NIGHTLY_DEST", ("i2v/demo/sample.csv", "out/nightly")),
    "INBOX": ("I2V_INBOX", "I2V_INBOX_DEST", ("inbox", "out/inbox")),
}


def settings(environ: dict[str, str]) -> dict[str, str]:
    """The environment ``prefect deploy`` gets: defaults filled in, schedules switched on or off."""
    env = dict(environ)
    for name, value in DEFAULTS.items():
        if not env.get(name, "").strip():
            env[name] = value
    for schedule, (source, target, placeholders) in SCHEDULES.items():
        given = bool(env.get(source, "").strip()) and bool(env.get(target, "").strip())
        env[f"I2V_{schedule}_ACTIVE"] = "true" if given else "false"
        if not given:
            env[source], env[target] = placeholders
    return env


def deployable(prefect_yaml: Path) -> tuple[list[str], list[str]]:
    """Names of the deployments whose flow file exists, and of those whose file does not (yet)."""
    spec = yaml.safe_load(prefect_yaml.read_text())
    ready, missing = [], []
    for deployment in spec.get("deployments", []):
        path = str(deployment["entrypoint"]).split(":", 1)[0]
        (ready if (prefect_yaml.parent / path).is_file() else missing).append(str(deployment["name"]))
    return ready, missing


async def set_up_server(limit_name: str, slots: int) -> None:
    """The work pool (if missing) and the shared concurrency limit (created or resized)."""
    async with get_client() as client:
        try:
            await client.read_work_pool(POOL)
            print(f"work pool {POOL!r}: exists")
        except ObjectNotFound:
            template = ProcessWorker.get_default_base_job_template()
            await client.create_work_pool(WorkPoolCreate(name=POOL, type="process", base_job_template=template))
            print(f"work pool {POOL!r}: created (type process)")
        await client.upsert_global_concurrency_limit_by_name(limit_name, slots)
        print(f"global concurrency limit {limit_name!r}: {slots} slot(s)")


def lost_run_automation(lost_after_s: float) -> AutomationCore:
    """Flow runs tagged ``i2v`` with no heartbeat (nor end) for ``lost_after_s`` become Crashed.

    Prefect's documented zombie-run automation, scoped to this project's runs: a run
    whose process died with its machine stays Running for ever otherwise, and nothing
    (not a retry, not a cancel) can move it on.
    """
    return AutomationCore(
        name=LOST_RUNS,
        description="A flow run of i2v-pipeline whose heartbeats stopped: its worker machine was lost.",
        trigger=EventTrigger(
            # Pending and Running arm it too: a run whose worker died between taking it and its
            # first heartbeat reaching the server sends none at all. A run being cancelled
            # whose machine is gone must not wait in Cancelling for ever.
            after=set(ARMED),
            # State events are named after the state's name, not its type: every final name
            # a run of this project can end with, and a run scheduled again; Running follows Pending.
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Running",
                *(f"prefect.flow-run.{name}" for name in ENDED_NAMES),
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification(
                {"prefect.resource.id": f"prefect.tag.{TAG}", "prefect.resource.role": "tag"}
            ),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=lost_after_s),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {lost_after_s:g} s: its worker was lost",
            )
        ],
    )


async def set_up_lost_run_detection(lost_after_s: float) -> None:
    """The lost-run automation, replaced if it exists (so a new ``I2V_LOST_AFTER_S`` takes effect)."""
    async with get_client() as client:
        for existing in await client.read_automations_by_name(LOST_RUNS):
            await client.delete_automation(existing.id)
        await client.create_automation(lost_run_automation(lost_after_s))
    print(f"automation {LOST_RUNS!r}: runs without a heartbeat for {lost_after_s:g} s become Crashed")


def main() -> int:
    """Set everything up; returns the exit status of ``prefect deploy``."""
    if not os.environ.get("PREFECT_API_URL"):
        print("PREFECT_API_URL is not set: point it at your Prefect server (http://HOST:4200/api)", file=sys.stderr)
        return 2
    env = settings(dict(os.environ))
    try:
        slots = int(env["I2V_PROVIDER_SLOTS"])
    except ValueError:
        print(f"I2V_PROVIDER_SLOTS must be a whole number, got {env['I2V_PROVIDER_SLOTS']!r}", file=sys.stderr)
        return 2
    try:
        heartbeat_s, lost_after_s = int(env["I2V_HEARTBEAT_S"]), float(env["I2V_LOST_AFTER_S"])
    except ValueError:
        print("I2V_HEARTBEAT_S and I2V_LOST_AFTER_S must be numbers of seconds", file=sys.stderr)
        return 2
    if heartbeat_s < MIN_HEARTBEAT_S or lost_after_s <= heartbeat_s:
        print(
            f"I2V_HEARTBEAT_S must be at least {MIN_HEARTBEAT_S} and I2V_LOST_AFTER_S above it,"
            f" got {heartbeat_s} and {lost_after_s:g}",
            file=sys.stderr,
        )
        return 2
    asyncio.run(set_up_server(env["I2V_CONCURRENCY_LIMIT"], slots))
    asyncio.run(set_up_lost_run_detection(lost_after_s))
    ready, missing = deployable(REPO / "prefect.yaml")
    for name in missing:
        print(f"deployment {name!r}: skipped, its flow file is not in this checkout yet", file=sys.stderr)
    for schedule, (source, target, _) in SCHEDULES.items():
        state = "active" if env[f"I2V_{schedule}_ACTIVE"] == "true" else f"inactive (set {source} and {target})"
        print(f"{schedule.lower()} schedule: {state}")
    prefect = str(Path(sys.executable).with_name("prefect"))
    command = [prefect, "--no-prompt", "deploy", *(arg for name in ready for arg in ("--name", name))]
    return subprocess.run(command, cwd=REPO, env=env, check=False).returncode  # noqa: S603 - our own command line


if __name__ == "__main__":
    sys.exit(main())
