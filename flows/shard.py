"""One shard of a run: read its rows, generate them in batches, write its part of the manifest.

A shard is the unit Prefect tracks and the seam where a run spreads over workers: the
same flow runs here as a subflow of :func:`flows.generate.generate_videos`, or as its own
flow run on another worker, given only plain data (the run's spec and its shard).
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import State, flow, runtime
from prefect.utilities.annotations import quote

from i2v import outcomes
from i2v.engine.spec import RunSpec, batches
from i2v.inputs.comparison import compared_models
from i2v.inputs.shards import InputPlan, Shard
from i2v.outcomes import Origin, RowOutcome
from orchestration import resources
from tasks.generation import generate_batch, salvage_batch
from tasks.inputs import read_shard_rows
from tasks.outputs import write_shard_part


@flow(name="generate-shard", flow_run_name="{run.name}-shard-{shard.index}", validate_parameters=False)
async def generate_shard(run: RunSpec, input_plan: InputPlan, shard: Shard) -> dict[str, Any]:
    """Generate the videos of one shard's rows; returns its counts by status."""
    flow_run_id = str(runtime.flow_run.id) if runtime.flow_run.id else None
    origin = Origin(run.name, flow_run_id)
    async with resources.engine(run) as engine:
        try:
            # Of identical rows the earliest is generated: a shard learns of the rows of
            # the shards before it (running alongside) before it starts on its own.
            await engine.shard_turn(shard.index)
            rows = await read_shard_rows(run, input_plan, shard)
            engine.announce(rows.rows)
        finally:
            engine.shard_announced(shard.index)
        engine.progress.hold(rows.total)
        results: list[RowOutcome] = []
        for bad in rows.invalid:
            outcome = outcomes.invalid(bad, origin)
            engine.progress.add(outcome)
            results.append(outcome)
        if rows.unread is not None:
            # The input changed after the run planned it: its rows here are not the plan's.
            run_models = tuple(spec.name for spec in compared_models(run.models))
            for index in range(shard.first_row, shard.first_row + shard.rows):
                # The plan's count for each row: its own models cell's, else the run's.
                for model in shard.row_models.get(index, run_models) or (None,):
                    outcome = outcomes.unread(index, rows.unread, origin, model=model)
                    engine.progress.add(outcome)
                    results.append(outcome)
        groups = batches(rows.rows, run.batch_size(len(rows.rows)))
        labels = [f"{shard.index}.{number}" for number in range(len(groups))]
        calls: list[Any] = [
            generate_batch(run, _unwalked(group), label, return_state=True)
            for group, label in zip(groups, labels, strict=True)
        ]
        try:
            states: list[State[list[RowOutcome]]] = await asyncio.gather(*calls)
        finally:
            engine.withdraw(rows.rows)
        returned: list[list[RowOutcome]] = []
        for group, label, state in zip(groups, labels, states, strict=True):
            if state.is_completed():
                returned.append(await state.aresult())
            else:
                returned.append(await salvage_batch(run, _unwalked(group), label, f"{state.name}: {state.message}"))
            results += returned[-1]
        await write_shard_part(run, shard.index, _unwalked(results))
        engine.progress.let_go(rows.total)
    counts: dict[str, Any] = {"shard": shard.index, "rows": len(results)}
    for outcome in results:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    # Prefect's records of this shard's task runs (their parameters and results) can outlive
    # the shard in contexts that Prefect's services copy; emptied, they hold none of its rows.
    handed: list[list[Any]] = [rows.rows, rows.invalid, *groups, *returned, results]
    for items in handed:
        items.clear()
    return counts


def _unwalked(items: list[Any]) -> Any:
    """``items`` as a task's parameter that Prefect passes on without walking it for futures.

    Prefect visits every field of every object in a parameter, on the event loop: for a
    shard's rows or outcomes that is a fifth of a second per 1,000.
    """
    return quote(items)
