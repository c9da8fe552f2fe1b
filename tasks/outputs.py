"""Tasks that write a shard's part of the manifest, and the run's manifest and artifacts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pyarrow as pa
from prefect import get_run_logger, task
from prefect.artifacts import acreate_link_artifact, acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from i2v import manifest, report
from i2v.inputs import InputPlan
from i2v.outcomes import RowOutcome
from i2v.run import RunSpec
from tasks import resources


@task(name="write-part", task_run_name="write-part-{shard}", cache_policy=NO_CACHE, persist_result=False)
async def write_shard_part(run: RunSpec, shard: int, outcomes: list[RowOutcome]) -> str:
    """Write one shard's outcomes as its part of the run's manifest; returns the part's key."""
    assert len({o.row_index for o in outcomes}) == len(outcomes), "one outcome per row"
    dest = resources.destination(run.dest)
    return await asyncio.to_thread(manifest.write_part, dest, run.name, shard, outcomes)


@task(name="write-manifest", cache_policy=NO_CACHE, persist_result=False)
async def publish_manifest(run: RunSpec, input_plan: InputPlan, wall_s: float) -> report.Summary:
    """Assemble the parts into the manifest (Parquet + CSV); publish summary, failures and link."""
    dest = resources.destination(run.dest)
    tally = report.Tally()

    def tables() -> Iterator[pa.Table]:
        for shard in input_plan.shards:
            table = manifest.read_part(dest, manifest.part_key(run.name, shard.index))
            if table is None:
                raise RuntimeError(f"the manifest part of shard {shard.index} is missing")
            if table.num_rows != shard.rows:
                raise RuntimeError(f"shard {shard.index} has {table.num_rows} outcomes for {shard.rows} rows")
            for record in table.to_pylist():
                tally.add(record)
            yield table

    written = await asyncio.to_thread(manifest.write_tables, dest, run.name, tables())
    summary = tally.summary(wall_s=wall_s)
    assert summary.total == input_plan.total_rows, "every input row has exactly one outcome"
    manifest_uri = written["manifest.parquet"]
    await acreate_markdown_artifact(
        report.markdown(summary, dest_uri=dest.uri, manifest_uri=manifest_uri),
        key="i2v-run-summary",
        description="Outcome of the image-to-video run",
    )
    if summary.first_failures:
        await acreate_table_artifact(
            summary.first_failures,
            key="i2v-failed-rows",
            description=f"The first {len(summary.first_failures)} rows that did not produce a video",
        )
    await acreate_link_artifact(
        _link(manifest_uri), link_text="manifest.parquet", key="i2v-manifest", description="The run's manifest"
    )
    get_run_logger().info(
        "%d rows: %d completed, %d skipped, %d failed",
        summary.total,
        summary.completed,
        summary.skipped,
        summary.failed,
    )
    return summary


def _link(uri: str) -> str:
    return uri if "://" in uri else f"file://{uri}"
