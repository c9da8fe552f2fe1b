"""A run spread over workers: one child flow run per shard, on whichever worker takes it.

The parent plans the input into shards (as :func:`flows.generate.generate_videos` does)
and starts one run of the ``generate-shard`` deployment per shard, on the work pool;
every worker polling the pool takes some. Each child runs the shard exactly as a local
run does (:func:`flows.shard.generate_shard`), with the parent's :class:`RunSpec`, so
its part of the manifest lands under the parent's run. The parent watches the children
(:mod:`orchestration.children`: started once, a shard lost with its worker run again,
progress counted in rows), then assembles their parts into one manifest.

* **One provider, many workers.** Every child's admission control also takes a slot of
  the Prefect global concurrency limit named by ``I2V_CONCURRENCY_LIMIT`` before each
  create (:mod:`orchestration.shared_slots`), so all workers together stay under the
  account's limit. A spending cap is shared out among the shards by their rows.
* **Plain data in.** A child gets the run's spec, its shard and the input's header as
  JSON parameters, never a secret: each worker has its own key (environment or Secret
  block, :mod:`orchestration.secrets`). The input must be readable at the same path on
  every worker: a path inside the project's folder, or a shared mount.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any
from uuid import UUID

from prefect import State, flow, get_run_logger, runtime
from prefect.client.orchestration import get_client
from prefect.states import Failed

from flows.parameters import takes_run_settings
from flows.shard import generate_shard
from i2v.engine.spec import RunSettings, RunSpec, run_name
from i2v.errors import Stopped
from i2v.inputs.shards import InputPlan, Shard
from orchestration import children as shards_watch
from orchestration import progress_artifact as progress
from orchestration import resources
from orchestration.stop_states import finished_state, stopped_state
from tasks.inputs import plan_input
from tasks.outputs import publish_manifest, publish_shard_summary
from tasks.shared_limit import check_shared_limit

#: The deployment each shard runs as (flow ``fanout-shard``, deployment ``generate-shard``).
SHARD_DEPLOYMENT = "fanout-shard/generate-shard"
#: Row kinds that stop a run: every row alike would fail the same way.
_RUN_FATAL_KINDS = ("auth", "out_of_credits")


@flow(name="fanout-shard", validate_parameters=True)
async def fanout_shard(run: RunSpec, input_plan: InputPlan, shard: Shard) -> dict[str, Any] | State[Any]:
    """One shard of a fanned-out run, as its own flow run: rows in, its part of the manifest out."""
    # The parameters arrive as JSON and are validated back into the dataclasses above.
    artifact = await progress.start_artifact(run.outcomes(shard), key=None)
    reporter = asyncio.create_task(progress.report(run.name, artifact))
    try:
        result: dict[str, Any] = await generate_shard.fn(run, input_plan, shard)
    finally:
        reporter.cancel()
    await progress.finish_counts(artifact, result)
    await publish_shard_summary(run, shard, result)
    halted = resources.halted()
    if halted is not None:
        # Cancelled (or stopped): the parent, or a retry of it, runs this shard again for its skipped rows.
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
    shard_retries: int = 2,
    max_wait_s: float = 86_400.0,
) -> dict[str, Any] | State[Any]:
    """Generate one video per input row, one child flow run per shard, on every worker of the pool.

    Parameters are those of ``generate-videos``; ``max_in_flight`` applies to each child
    (the global concurrency limit caps them together) and ``max_credits`` is shared out
    among the shards by their rows. ``shard_deployment`` names the deployment children
    run as; ``check_every_s`` is how often the parent looks at them; a shard lost with its
    worker runs again up to ``shard_retries`` times; the parent waits ``max_wait_s`` at
    most for them all to end.
    """
    started = time.monotonic()
    logger = get_run_logger()
    run = settings.spec(name=await _stable_run_name(), input=input, dest=dest)
    await check_shared_limit()
    input_plan = await plan_input(run, settings.rows_per_shard)
    shares = [shard_share(run, shard, input_plan.total_rows) for shard in input_plan.shards]
    children = await shards_watch.start_children(run, input_plan, shard_deployment, shares)
    logger.info("run %s: %d shard(s) started as child flow runs of %s", run.name, len(children), shard_deployment)
    artifact = await progress.start_artifact(run.outcomes(input_plan))
    waiting = await shards_watch.watch(
        children,
        total_rows=input_plan.total_rows,
        artifact=artifact,
        every_s=check_every_s,
        shard_retries=shard_retries,
        max_wait_s=max_wait_s,
    )
    recovered = [note for child in children for note in child.notes]
    unfinished = waiting + [child for child in children if child.ended and not child.completed]
    if unfinished:
        listed = ", ".join(f"shard {child.shard.index} ({child.state})" for child in unfinished[:10])
        still = f"; still waiting after {max_wait_s:g} s: {len(waiting)}" if waiting else ""
        return Failed(
            message=f"{len(unfinished)} of {len(children)} shard(s) did not complete: {listed}{still};"
            " retry this flow run to run them again (completed shards are not redone)",
            data={"run": run.name, "recovered": recovered},
        )
    summary = await publish_manifest(run, input_plan, time.monotonic() - started)
    await progress.finish_artifact(artifact, summary)
    result = summary.as_dict()
    result.update(run=run.name, shards=len(children), recovered=recovered)
    fatal = [kind for kind in _RUN_FATAL_KINDS if kind in result.get("failures_by_kind", {})]
    if fatal:
        return Failed(message=f"rows failed with {', '.join(fatal)}: check the API key and the account", data=result)
    return finished_state(summary, result)


def shard_share(run: RunSpec, shard: Shard, total_rows: int) -> RunSpec:
    """The run as one shard runs it: with its share of the spending cap, by rows.

    Each child's admission control judges its own spend, so a cap over the whole run is
    kept by giving each shard no more than its rows' part of it.
    """
    if run.max_credits is None or total_rows == 0:
        return run
    return replace(run, max_credits=run.max_credits * shard.rows / total_rows)


async def _stable_run_name() -> str:
    """The run's name, the same on every try of this flow run: its creation time and name."""
    flow_run_id = runtime.flow_run.id
    async with get_client() as client:
        me = await client.read_flow_run(UUID(str(flow_run_id)))
    return run_name(me.name, now=me.created.timestamp() if me.created else None)
