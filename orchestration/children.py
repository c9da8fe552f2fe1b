"""A fan-out's child flow runs: started once per shard, watched to their end, a lost one run again.

* **Started once.** A child's idempotency key is ``<run>-<shard>``, so a retried parent
  finds the children it started before instead of starting (and paying for) new ones.
* **Lost shards run again.** A child whose worker was lost ends Crashed: by itself when
  only the worker process died, or through ``make deploy``'s automation once its
  heartbeats stop (the machine died). The parent schedules it again, the same flow run,
  on whichever worker takes it, up to ``shard_retries`` times; rows it already finished
  are not redone and jobs it started are re-attached, not paid for again.
* **Bounded wait.** The parent stops waiting after ``max_wait_s`` and says which shards
  had not ended.
* **Progress in rows.** Each child keeps a progress artifact; the parent's own counts the
  rows done across children, with each shard's state in words (a shard no worker has
  taken yet is "waiting for a worker", not Prefect's "Late").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import aupdate_progress_artifact
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments.flow_runs import arun_deployment
from prefect.states import AwaitingRetry, Failed
from pydantic_core import to_jsonable_python

from i2v.engine.spec import RunSpec
from i2v.inputs.shards import InputPlan, Shard

#: Children started at once (each start is one API call).
STARTS_AT_ONCE = 8
#: Flow runs read per request.
_PAGE = 200
#: Prefect's names for a scheduled run no worker has taken yet.
_WAITING = ("Late", "Scheduled", "AwaitingRetry", "Pending")


@dataclass
class Child:
    """One shard's flow run, as the parent last saw it."""

    shard: Shard
    run: FlowRun
    #: Times the parent has had it run (1 when started; one more for each run again).
    tries: int = 1
    #: What happened to it worth telling the operator (lost, run again).
    notes: list[str] = field(default_factory=list)
    #: Its progress artifact's share done, 0 to 100.
    percent: float = 0.0

    @property
    def state(self) -> str:
        return state_name(self.run)

    @property
    def ended(self) -> bool:
        return self.run.state is not None and self.run.state.is_final()

    @property
    def completed(self) -> bool:
        return self.run.state is not None and self.run.state.type == StateType.COMPLETED


async def start_children(run: RunSpec, input_plan: InputPlan, deployment: str, runs: Sequence[RunSpec]) -> list[Child]:
    """One child flow run per shard (``runs[i]`` is shard i's spec), created once per run and shard."""
    turns = asyncio.Semaphore(STARTS_AT_ONCE)

    async def start(shard: Shard, spec: RunSpec) -> Child:
        async with turns:
            flow_run = await arun_deployment(
                deployment,
                parameters={
                    "run": to_jsonable_python(spec),
                    "input_plan": to_jsonable_python(input_plan.only(shard)),
                    "shard": to_jsonable_python(shard),
                },
                flow_run_name=f"{run.name}-shard-{shard.index}",
                timeout=0,
                idempotency_key=f"{run.name}-{shard.index}",
                tags=["i2v", f"i2v-run:{run.name}"],
            )
        child = Child(shard, flow_run)
        if child.ended and not child.completed:
            # Started by an earlier try of the parent and ended badly: run it again, the same run.
            await _run_again(child, f"its run ended {child.state}")
        return child

    return list(
        await asyncio.gather(*(start(shard, spec) for shard, spec in zip(input_plan.shards, runs, strict=True)))
    )


async def watch(
    children: Sequence[Child],
    *,
    total_rows: int,
    artifact: UUID | None,
    every_s: float,
    shard_retries: int,
    max_wait_s: float,
) -> list[Child]:
    """Wait until every child has ended (or ``max_wait_s`` passed); returns those that had not."""
    logger = get_run_logger()
    deadline = time.monotonic() + max_wait_s
    last = ""
    async with get_client() as client:
        while True:
            await _refresh(client, children)
            for child in children:
                if child.ended and child.state == "Crashed" and child.tries <= shard_retries:
                    why = child.run.state.message if child.run.state is not None else None
                    await _run_again(child, f"lost (Crashed: {why or 'no message'})")
            rows_done = sum(round(child.percent / 100 * child.shard.rows) for child in children)
            line = describe(children, rows_done, total_rows)
            if line != last:
                logger.info(line)
                last = line
                if artifact is not None:
                    percent = 100.0 * rows_done / total_rows if total_rows else 100.0
                    await _update(artifact, percent, line)
            pending = [child for child in children if not child.ended]
            if not pending:
                return []
            if time.monotonic() >= deadline:
                return pending
            await asyncio.sleep(min(every_s, max(0.0, deadline - time.monotonic())))


def describe(children: Sequence[Child], rows_done: int, total_rows: int) -> str:
    """One line for the operator: rows done, shards by state in words, shards that were run again."""
    states: dict[str, int] = {}
    for child in children:
        name = "waiting for a worker" if child.state in _WAITING else child.state
        states[name] = states.get(name, 0) + 1
    shown = ", ".join(f"{count} {name}" for name, count in sorted(states.items()))
    line = f"{rows_done:,}/{total_rows:,} rows done; {len(children)} shard(s): {shown}"
    again = [f"shard {child.shard.index} (try {child.tries})" for child in children if child.tries > 1]
    if again:
        line += "; run again after a lost worker: " + ", ".join(again)
    return line


def state_name(run: FlowRun) -> str:
    """A flow run's state as Prefect names it."""
    if run.state is None:
        return "unknown"
    return run.state.name or run.state.type.value


async def _refresh(client: PrefectClient, children: Sequence[Child]) -> None:
    """Each child's flow run and progress, as the server has them now."""
    by_id = {child.run.id: child for child in children}
    ids = list(by_id)
    seen: dict[UUID, FlowRun] = {}
    for start in range(0, len(ids), _PAGE):
        chunk = ids[start : start + _PAGE]
        found = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)), limit=len(chunk)
        )
        seen.update({run.id: run for run in found})
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=chunk), type=ArtifactFilterType(any_=["progress"])
            )
        )
        for found_artifact in artifacts:
            child = by_id.get(found_artifact.flow_run_id) if found_artifact.flow_run_id else None
            if child is not None and isinstance(found_artifact.data, int | float):
                child.percent = max(child.percent, float(found_artifact.data))
    for child_id, child in by_id.items():
        # A child deleted from the server counts as ended, not completed.
        child.run = seen.get(child_id) or _gone(child_id)


async def _run_again(child: Child, why: str) -> None:
    """Schedule a child's flow run again (the same run); its finished rows are not redone."""
    note = f"shard {child.shard.index}: {why}; running it again (try {child.tries + 1})"
    get_run_logger().warning(note)
    child.notes.append(note)
    child.tries += 1
    async with get_client() as client:
        await client.set_flow_run_state(child.run.id, AwaitingRetry(message=why), force=True)
    child.run = child.run.model_copy(update={"state": AwaitingRetry(message=why)})


async def _update(artifact: UUID, percent: float, description: str) -> None:
    try:
        await aupdate_progress_artifact(artifact, min(percent, 100.0), description=description)
    except Exception as exc:  # noqa: BLE001 - the artifact only shows counts; it fails no run
        get_run_logger().debug("progress artifact not updated: %s", exc)


def _gone(flow_run_id: UUID) -> FlowRun:
    return FlowRun(id=flow_run_id, flow_id=flow_run_id, name="deleted", state=Failed(message="deleted"))
