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
from typing import Any, Literal

from prefect import State, flow, runtime

from flows.shard import generate_shard
from i2v.api.models import DEFAULT_MODEL
from i2v.engine.progress import Progress
from i2v.engine.spec import DEFAULT_MAX_IN_FLIGHT, DEFAULT_ROWS_PER_SHARD, SHARDS_AT_ONCE, RunSpec, given, safe_label
from i2v.engine.spec import run_name as default_run_name
from i2v.inputs.shards import InputPlan
from i2v.limits import Limits
from orchestration import progress_artifact as progress
from orchestration import resources
from orchestration.stop_states import stopped_state
from tasks.inputs import plan_input
from tasks.outputs import publish_manifest


@flow(name="generate-videos", validate_parameters=True)
async def generate_videos(
    input: str,
    dest: str,
    model: str = DEFAULT_MODEL,
    api_path: Literal["universal", "legacy"] | None = None,
    resolution: str | None = None,
    duration: int | None = None,
    aspect_ratio: str | None = None,
    negative_prompt: str | None = None,
    seed: int | None = None,
    enhance_prompt: bool | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    poll_interval_s: float = 10.0,
    job_timeout_s: float = 900.0,
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
    rows_per_task: int | None = None,
    retry: Literal["retryable", "all"] = "retryable",
    resubmit_unknown: bool = False,
    max_failure_ratio: float | None = None,
    max_credits: float | None = None,
    limits: Limits | None = None,
    input_format: Literal["csv", "jsonl", "parquet"] | None = None,
    run_name: str | None = None,
) -> dict[str, Any] | State[Any]:
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
    defaults = given(
        resolution=resolution,
        duration=duration,
        aspect_ratio=aspect_ratio,
        negative_prompt=negative_prompt,
        seed=seed,
        enhance_prompt=enhance_prompt,
    )
    run = RunSpec(
        name=safe_label(run_name) if run_name else default_run_name(runtime.flow_run.name),
        input=input,
        dest=dest,
        model=model,
        api_path=api_path,
        defaults=defaults,
        max_in_flight=max_in_flight,
        poll_interval_s=poll_interval_s,
        job_timeout_s=job_timeout_s,
        rows_per_task=rows_per_task,
        retry=retry,
        resubmit_unknown=resubmit_unknown,
        max_failure_ratio=max_failure_ratio,
        max_credits=max_credits,
        limits=limits or Limits(),
        input_format=input_format,
    )
    input_plan = await plan_input(run, rows_per_shard)
    artifact = await progress.start_artifact(input_plan.total_rows)
    async with resources.engine(run, progress=Progress(total=input_plan.total_rows)) as engine:
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
    return summary.as_dict()


async def _run_shards(run: RunSpec, input_plan: InputPlan) -> None:
    slots = asyncio.Semaphore(SHARDS_AT_ONCE)

    async def one(index: int) -> None:
        shard = input_plan.shards[index]
        async with slots:
            await generate_shard(run, input_plan.only(shard), shard)

    async with asyncio.TaskGroup() as group:
        for index in range(len(input_plan.shards)):
            group.create_task(one(index))
