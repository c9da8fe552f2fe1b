"""The task that generates a batch of rows: submit, wait and store, each row a coroutine."""

from __future__ import annotations

from prefect import runtime, task
from prefect.cache_policies import NO_CACHE

from i2v.engine.spec import RunSpec
from i2v.inputs.row import Row
from i2v.outcomes import RowOutcome
from orchestration import resources
from orchestration.retry_conditions import unfinished_rows

RETRIES = 2


@task(
    name="generate",
    task_run_name="generate-{label}",
    retries=RETRIES,
    retry_delay_seconds=[10, 60],
    retry_jitter_factor=0.5,
    retry_condition_fn=unfinished_rows,
    cache_policy=NO_CACHE,
    persist_result=False,
)
async def generate_batch(run: RunSpec, rows: list[Row], label: str) -> list[RowOutcome]:
    """One outcome per row, each row a coroutine under the run's shared admission limiter.

    Rows left unfinished by transient failures fail the task run, so Prefect retries it;
    a retry redoes only those rows (the others find their records, and unfinished jobs
    are re-attached through the journal). The last try reports them as they are.
    """
    final = runtime.task_run.run_count > RETRIES
    flow_run_id = str(runtime.flow_run.id) if runtime.flow_run.id else None
    async with resources.engine(run) as engine:
        return await engine.run_batch(rows, flow_run_id=flow_run_id, final=final)


@task(name="salvage", task_run_name="salvage-{label}", cache_policy=NO_CACHE, persist_result=False)
async def salvage_batch(run: RunSpec, rows: list[Row], label: str, error: str) -> list[RowOutcome]:
    """Outcomes for a batch whose task broke off: each row's own record, or the error."""
    flow_run_id = str(runtime.flow_run.id) if runtime.flow_run.id else None
    async with resources.engine(run) as engine:
        return await engine.salvage(rows, RuntimeError(error), flow_run_id=flow_run_id)
