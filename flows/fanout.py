"""A run spread over workers: one child flow run per shard, on whichever worker takes it.

The parent plans the input into shards (as :func:`flows.generate.generate_videos` does)
and starts one run of the ``generate-shard`` deployment per shard, on the work pool;
every worker polling the pool takes some. Each child runs the shard exactly as a local
run does (:func:`flows.shard.generate_shard`), with the parent's :class:`RunSpec`, so
its part of the manifest lands under the parent's run. The parent waits for the
children, then assembles their parts into one manifest.

* **No duplicate children.** A child's idempotency key is ``<run>-<shard>`` and the run's
  name comes from the parent flow run itself (its name and creation time), so a retried
  parent finds the children it started before instead of starting (and paying for)
  new ones. Children that ended without completing (crashed, failed, cancelled) are
  scheduled again, as the same flow runs, when the parent is retried.
* **One provider, many workers.** Every child's admission control also takes a slot of
  the Prefect global concurrency limit named by ``I2V_CONCURRENCY_LIMIT`` before each
  create (:mod:`orchestration.shared_slots`), so all workers together stay under the account's limit.
* **Plain data in.** A child gets the run's spec, its shard and the input's header as
  JSON parameters, never a secret: each worker has its own key (environment or Secret
  block, :mod:`orchestration.secrets`). The input must be readable at the same path on every
  worker: a path relative to the code's folder (``$I2V_HOME``), or a shared mount.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from uuid import UUID

from prefect import State, flow, get_run_logger, runtime
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments.flow_runs import arun_deployment
from prefect.states import AwaitingRetry, Failed
from pydantic_core import to_jsonable_python

from flows.parameters import takes_run_settings
from flows.shard import generate_shard
from i2v.engine.spec import RunSettings, RunSpec, run_name
from i2v.errors import Stopped
from i2v.inputs.shards import InputPlan, Shard
from orchestration import resources
from orchestration.stop_states import stopped_state
from tasks.inputs import plan_input
from tasks.outputs import publish_manifest
from tasks.shared_limit import check_shared_limit

#: The deployment each shard runs as (flow ``fanout-shard``, deployment ``generate-shard``).
SHARD_DEPLOYMENT = "fanout-shard/generate-shard"
#: Children started at once (each start is one API call and one tracking task run).
STARTS_AT_ONCE = 8
#: Row kinds that stop a run: every row alike would fail the same way.
_RUN_FATAL_KINDS = ("auth", "out_of_credits")


@flow(name="fanout-shard", validate_parameters=True)
async def fanout_shard(run: RunSpec, input_plan: InputPlan, shard: Shard) -> dict[str, Any] | State[Any]:
    """One shard of a fanned-out run, as its own flow run: rows in, its part of the manifest out."""
    # The parameters arrive as JSON and are validated back into the dataclasses above.
    result: dict[str, Any] = await generate_shard.fn(run, input_plan, shard)
    halted = resources.halted()
    if halted is not None:
        # Cancelled (or stopped): a retried parent runs this shard again for its skipped rows.
        return await stopped_state(Stopped(halted), result.get("skipped", 0))
    return result


@flow(name="fanout", validate_parameters=True)
@takes_run_settings()
async def fanout(
    input: str,
    dest: str,
    *,
    settings: RunSettings,
    shard_deployment: str = SHARD_DEPLOYMENT,
    check_every_s: float = 5.0,
) -> dict[str, Any] | State[Any]:
    """Generate one video per input row, one child flow run per shard, on every worker of the pool.

    Parameters are those of ``generate-videos``; ``max_in_flight`` applies to each child
    (the global concurrency limit caps them together) and ``max_credits`` is shared out
    among the shards by their rows. ``shard_deployment`` names the deployment children
    run as; ``check_every_s`` is how often the parent looks at them.
    """
    started = time.monotonic()
    logger = get_run_logger()
    run = settings.spec(name=await _stable_run_name(), input=input, dest=dest)
    await check_shared_limit()
    input_plan = await plan_input(run, settings.rows_per_shard)
    children = await _start_children(run, input_plan, shard_deployment)
    logger.info("run %s: %d shard(s) started as child flow runs of %s", run.name, len(children), shard_deployment)
    ended = await _wait(children, check_every_s)
    unfinished = [(shard, ended[child.id]) for shard, child in zip(input_plan.shards, children, strict=True)]
    unfinished = [(shard, child) for shard, child in unfinished if not _completed(child)]
    if unfinished:
        listed = ", ".join(f"shard {shard.index} ({_state_name(child)})" for shard, child in unfinished[:10])
        return Failed(
            message=f"{len(unfinished)} of {len(children)} shard(s) did not complete: {listed};"
            " retry this flow run to run them again (completed shards are not redone)"
        )
    summary = await publish_manifest(run, input_plan, time.monotonic() - started)
    result = summary.as_dict()
    result.update(run=run.name, shards=len(children))
    fatal = [kind for kind in _RUN_FATAL_KINDS if kind in result.get("failures_by_kind", {})]
    if fatal:
        return Failed(message=f"rows failed with {', '.join(fatal)}: check the API key and the account", data=result)
    return result


async def _stable_run_name() -> str:
    """The run's name, the same on every try of this flow run: its creation time and name."""
    flow_run_id = runtime.flow_run.id
    async with get_client() as client:
        me = await client.read_flow_run(UUID(str(flow_run_id)))
    return run_name(me.name, now=me.created.timestamp() if me.created else None)


async def _start_children(run: RunSpec, input_plan: InputPlan, deployment: str) -> list[FlowRun]:
    """One child flow run per shard, created once per run and shard whatever retries the parent."""
    turns = asyncio.Semaphore(STARTS_AT_ONCE)

    async def start(shard: Shard) -> FlowRun:
        async with turns:
            child = await arun_deployment(
                deployment,
                parameters={
                    "run": to_jsonable_python(shard_share(run, shard, input_plan.total_rows)),
                    "input_plan": to_jsonable_python(input_plan.only(shard)),
                    "shard": to_jsonable_python(shard),
                },
                flow_run_name=f"{run.name}-shard-{shard.index}",
                timeout=0,
                idempotency_key=f"{run.name}-{shard.index}",
                tags=["i2v", f"i2v-run:{run.name}"],
            )
            if child.state is not None and child.state.is_final() and not _completed(child):
                # Started by an earlier try of the parent and ended badly: run it again, the same run.
                async with get_client() as client:
                    await client.set_flow_run_state(child.id, AwaitingRetry(), force=True)
                get_run_logger().info("shard %d: its run ended %s; running it again", shard.index, _state_name(child))
            return child

    return list(await asyncio.gather(*(start(shard) for shard in input_plan.shards)))


async def _wait(children: Sequence[FlowRun], every_s: float) -> dict[UUID, FlowRun]:
    """Every child in a final state; logs how many are done as they finish."""
    logger = get_run_logger()
    pending = {child.id for child in children}
    ended: dict[UUID, FlowRun] = {}
    last = ""
    async with get_client() as client:
        while pending:
            ids = list(pending)
            seen: dict[UUID, FlowRun] = {}
            for start in range(0, len(ids), 200):
                chunk = ids[start : start + 200]
                found = await client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)), limit=len(chunk)
                )
                seen.update({run.id: run for run in found})
            for child_id in ids:
                run = seen.get(child_id)
                if run is None or (run.state is not None and run.state.is_final()):
                    # A child deleted from the server counts as ended, not completed.
                    ended[child_id] = run if run is not None else _gone(child_id)
                    pending.discard(child_id)
            counts: dict[str, int] = {}
            for run in seen.values():
                counts[_state_name(run)] = counts.get(_state_name(run), 0) + 1
            line = f"{len(children) - len(pending)}/{len(children)} shard(s) ended; " + ", ".join(
                f"{count} {name}" for name, count in sorted(counts.items())
            )
            if line != last:
                logger.info(line)
                last = line
            if pending:
                await asyncio.sleep(every_s)
    return ended


def shard_share(run: RunSpec, shard: Shard, total_rows: int) -> RunSpec:
    """The run as one shard runs it: with its share of the spending cap, by rows.

    Each child's admission control judges its own spend, so a cap over the whole run is
    kept by giving each shard no more than its rows' part of it.
    """
    if run.max_credits is None or total_rows == 0:
        return run
    return replace(run, max_credits=run.max_credits * shard.rows / total_rows)


def _completed(run: FlowRun) -> bool:
    return run.state is not None and run.state.type == StateType.COMPLETED


def _state_name(run: FlowRun) -> str:
    if run.state is None:
        return "unknown"
    return run.state.name or run.state.type.value


def _gone(flow_run_id: UUID) -> FlowRun:
    return FlowRun(id=flow_run_id, flow_id=flow_run_id, name="deleted", state=Failed(message="deleted"))
