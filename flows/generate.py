"""The bulk flow: an input in; videos, manifest and report out. Orchestration only.

The input is planned into shards (bounded runs of rows, :mod:`flows.shard`); up to two
shards run at once, so the provider stays busy across one shard's tail while memory
stays bounded by two shards. Every row of every shard shares one engine in this process
(admission control, poll pacing, clients), and every input row gets exactly one
manifest row: invalid, duplicated, already done, failed in any step, or never sent
because the run stopped.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prefect import State, flow, runtime

from flows.parameters import takes_run_settings
from flows.shard import generate_shard
from i2v.engine.progress import Progress
from i2v.engine.spec import SHARDS_AT_ONCE, RunSettings, RunSpec, safe_label
from i2v.engine.spec import run_name as default_run_name
from i2v.inputs.shards import InputPlan
from orchestration import progress_artifact as progress
from orchestration import resources
from orchestration.stop_states import finished_state, stopped_state
from tasks.inputs import plan_input
from tasks.outputs import publish_manifest


@flow(name="generate-videos", validate_parameters=True)
@takes_run_settings()
async def generate_videos(input: str, dest: str, *, settings: RunSettings) -> dict[str, Any] | State[Any]:
    """Generate one video per input row into ``dest`` (a folder or ``s3://bucket/prefix``).

    Row cells override the run defaults given here (``resolution``, ``duration``, ...),
    which override the model's. The API key and base URL come from ``AIMLAPI_API_KEY``
    and ``AIMLAPI_BASE_URL``, never from parameters.

    Work a previous run finished is not paid for again: stored videos are skipped, live
    jobs re-attached, and failed rows retried only when their failure may pass another
    time (``retry="all"`` retries every failure; ``resubmit_unknown`` sends again a create
    whose outcome was never known). ``max_failure_ratio`` and ``max_credits`` stop new
    submissions once passed; the run then ends Failed, its manifest written. ``limits``
    bounds rows, prompts, images and downloads (see :mod:`i2v.limits`). ``input`` is a
    local path or ``s3://`` URI of a CSV, JSON Lines or Parquet file (``input_format``,
    or its extension, says which).
    ``run_name`` names the run's folder under ``runs/`` (default: a timestamp and the
    flow run's name).
    """
    started = time.monotonic()
    name = safe_label(settings.run_name) if settings.run_name else default_run_name(runtime.flow_run.name)
    run = settings.spec(name=name, input=input, dest=dest)
    input_plan = await plan_input(run, settings.rows_per_shard)
    artifact = await progress.start_artifact(run.outcomes(input_plan))
    async with resources.engine(run, progress=Progress(total=run.outcomes(input_plan))) as engine:
        engine.order_shards()
        reporter = asyncio.create_task(progress.report(run.name, artifact))
        try:
            await _run_shards(run, input_plan)
        finally:
            reporter.cancel()
    summary = await publish_manifest(run, input_plan, time.monotonic() - started)
    await progress.finish_artifact(artifact, summary)
    if engine.stopped is not None:
        return await stopped_state(engine.stopped, summary.skipped)
    return finished_state(summary, summary.as_dict())


async def _run_shards(run: RunSpec, input_plan: InputPlan) -> None:
    slots = asyncio.Semaphore(SHARDS_AT_ONCE)

    async def one(index: int) -> None:
        shard = input_plan.shards[index]
        async with slots:
            await generate_shard(run, input_plan.only(shard), shard)

    async with asyncio.TaskGroup() as group:
        for index in range(len(input_plan.shards)):
            group.create_task(one(index))
