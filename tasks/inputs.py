"""Tasks that plan the input and read one shard's rows."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from i2v.engine.spec import RunSpec
from i2v.errors import InputChanged, StorageError
from i2v.inputs.from_manifest import Selection, write_input
from i2v.inputs.shards import InputPlan, Shard, plan
from i2v.inputs.validation import RowSet, read_shard
from orchestration import resources

#: Leftovers of writes (temporary files, unfinished uploads) untouched this long belong to a run that died.
LEFTOVERS_AGE_S = 3600.0


@task(name="plan-input", cache_policy=NO_CACHE, persist_result=False)
async def plan_input(run: RunSpec, rows_per_shard: int) -> InputPlan:
    """Count the input's rows and cut them into shards; check the destination can be written.

    Once per run, the destination is rid of what killed runs left there (temporary files,
    unfinished S3 uploads) more than :data:`LEFTOVERS_AGE_S` ago.
    """
    logger = get_run_logger()
    dest = resources.destination(run.dest)
    await asyncio.to_thread(dest.check)
    try:
        removed = await asyncio.to_thread(dest.clean_leftovers, LEFTOVERS_AGE_S)
    except StorageError as exc:
        logger.warning("leftovers of interrupted writes not cleaned up (%s)", exc)
    else:
        if removed:
            logger.info("removed %d leftover(s) of writes interrupted over an hour ago", removed)
    input_plan = await asyncio.to_thread(
        plan,
        run.input,
        rows_per_shard=rows_per_shard,
        limits=run.limits,
        format=run.input_format,
        columns=run.columns,
        opener=resources.opener(run.input),
    )
    logger.info(
        "%d rows in %d shard(s) of up to %d rows", input_plan.total_rows, len(input_plan.shards), rows_per_shard
    )
    return input_plan


@task(name="read-shard", task_run_name="read-shard-{shard.index}", cache_policy=NO_CACHE, persist_result=False)
async def read_shard_rows(run: RunSpec, input_plan: InputPlan, shard: Shard) -> RowSet:
    """Read and validate one shard's rows; invalid rows are reported, not raised.

    An input changed since the run planned it is reported too: the shard's rows are
    ``unread``, each to fail with the reason, and the run goes on to its manifest.
    """
    logger = get_run_logger()
    try:
        rows = await asyncio.to_thread(
            read_shard,
            input_plan,
            shard,
            model=run.model,
            route=run.api_path,
            defaults=run.defaults,
            limits=run.limits,
            opener=resources.opener(input_plan.path),
            models=run.models,
        )
    except InputChanged as exc:
        logger.error("shard %d: %s", shard.index, exc)
        return RowSet(total=run.outcomes(shard), input_rows=shard.rows, unread=str(exc))
    if rows.invalid:
        logger.warning(
            "shard %d: %d invalid row(s), first: %s", shard.index, len(rows.invalid), rows.invalid[0].message
        )
    if shard.index == 0 and rows.ignored_columns:
        logger.warning("ignored columns (not a parameter of any model): %s", ", ".join(rows.ignored_columns))
    return rows


@task(name="select-rows", cache_policy=NO_CACHE, persist_result=False)
async def select_rows(dest: str, manifest_key: str, selection: Selection, out: str) -> int:
    """Write the rows of a manifest that ``selection`` chooses as an input file; returns how many."""
    chosen = await asyncio.to_thread(write_input, resources.destination(dest), manifest_key, selection, Path(out))
    get_run_logger().info("%d row(s) of %s to run again", chosen, manifest_key)
    return chosen
