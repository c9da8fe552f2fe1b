"""Tasks that write a shard's part of the manifest, and the run's manifest and artifacts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pyarrow as pa
from prefect import get_run_logger, task
from prefect.artifacts import acreate_link_artifact, acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from i2v.engine.spec import RunSpec
from i2v.errors import StorageError
from i2v.inputs.comparison import compared_models
from i2v.inputs.shards import InputPlan, Shard
from i2v.manifest import fallback, merged, reports
from i2v.manifest import run_table as manifest
from i2v.manifest import videofolder as export
from i2v.outcomes import RowOutcome
from i2v.report import summary as report
from i2v.report.comparison import publish_comparison
from i2v.storage.destination import Destination
from orchestration import resources

#: How long a link in an artifact opens its object (a presigned S3 URL: seven days at most).
LINK_LIFETIME_S = 7 * 86_400


@task(name="write-part", task_run_name="write-part-{shard}", cache_policy=NO_CACHE, persist_result=False)
async def write_shard_part(run: RunSpec, shard: int, outcomes: list[RowOutcome]) -> str:
    """Write one shard's outcomes as its part of the run's manifest; returns the part's URI.

    A destination that refuses it (full, read-only) does not lose it: it goes to the
    run's local fallback folder (:mod:`i2v.manifest.fallback`), said on the log.
    """
    # A rerun's rows keep the indices of the manifest they came from, which rows of
    # different inputs may share; their work (row key) tells them apart, and the pairs of a
    # comparison of models too.
    assert len({(o.row_index, o.row_key) for o in outcomes}) == len(outcomes), "one outcome per row"
    dest = resources.destination(run.dest)
    try:
        key = await asyncio.to_thread(manifest.write_part, dest, run.name, shard, outcomes)
    except StorageError as exc:
        spare = await asyncio.to_thread(fallback.spare, run.name)
        key = await asyncio.to_thread(manifest.write_part, spare, run.name, shard, outcomes)
        get_run_logger().warning(
            "shard %d: the destination refused its part of the manifest (%s); written to %s", shard, exc, spare.uri
        )
        return spare.uri_for(key)
    return dest.uri_for(key)


@task(name="write-manifest", cache_policy=NO_CACHE, persist_result=False)
async def publish_manifest(run: RunSpec, input_plan: InputPlan, wall_s: float) -> report.Summary:
    """Assemble the parts into the run's manifest, merge it into the destination's, write the reports.

    Rewrites the destination's ``metadata.jsonl`` (its videos as a Hugging Face ``videofolder``),
    writes the run's own report page (``runs/<run>/report.html``, its rows) and the
    destination's (``report.html``, every row's latest outcome, from the merged manifest).

    Publishes the summary, the first failed rows and links to the manifest and both
    report pages as artifacts.

    The run's manifest is written whatever the destination does: one that refuses it
    (full, read-only) has it written to the run's local fallback folder instead, and the
    summary says where (``fallback``); the merge, ``metadata.jsonl`` and the reports wait
    for a run the destination takes. A destination that takes the manifest but not what
    follows it keeps the manifest, and the next run merges it.
    """
    logger = get_run_logger()
    dest = resources.destination(run.dest)
    spare = await asyncio.to_thread(fallback.used, run.name)

    def tallied(tally: report.Tally) -> Iterator[pa.Table]:
        for table in _parts(dest, spare, run, input_plan):
            for record in table.to_pylist():
                tally.add(record)
            yield table

    def rows() -> Iterator[dict[str, Any]]:
        for table in _parts(dest, spare, run, input_plan):
            yield from table.to_pylist()

    home: Destination = dest
    tally = report.Tally()
    try:
        written = await asyncio.to_thread(manifest.write_tables, dest, run.name, tallied(tally))
    except StorageError as exc:
        home = spare = await asyncio.to_thread(fallback.spare, run.name)
        tally = report.Tally()
        written = await asyncio.to_thread(manifest.write_tables, home, run.name, tallied(tally))
        logger.warning("the destination refused the run's manifest (%s); it is written to %s", exc, home.uri)
    manifest_uri = written[f"runs/{run.name}/manifest.parquet"]
    # The models side by side: the run's --models, then any more that rows' models cells name.
    compared = list(dict.fromkeys([*(spec.name for spec in compared_models(run.models)), *input_plan.cell_models]))
    summary = replace(
        tally.summary(wall_s=wall_s),
        manifest_uri=manifest_uri,
        fallback=home.uri if home is not dest else None,
        input_rows=input_plan.total_rows,
        models=compared,
    )
    assert summary.total == run.outcomes(input_plan), "every (input row, model) has exactly one outcome"
    report_uri = destination_report_uri = None
    if home is dest:
        try:
            await asyncio.to_thread(merged.merge, dest)
            # After the merge, from the root: training code sees every completed row of the destination.
            await asyncio.to_thread(export.write_metadata, dest)
            report_uri = await asyncio.to_thread(reports.publish_run_report, dest, run.name, summary, rows())
            if compared:  # before the destination's page, which links to it
                where = await asyncio.to_thread(publish_comparison, dest, run.name, compared, rows())
                logger.info("the models side by side: %s", where)
            destination_report_uri = await asyncio.to_thread(reports.publish_destination_report, dest)
        except StorageError as exc:
            logger.warning(
                "the run's manifest is written, but the destination's merged manifest, metadata.jsonl or reports"
                " are not (%s); the next run brings them up to date",
                exc,
            )
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
    await _link_artifact(home, manifest_uri, key="i2v-manifest", what="The run's manifest")
    if report_uri is not None:
        await _link_artifact(dest, report_uri, key="i2v-report", what="The run's report page (its rows)")
    if destination_report_uri is not None:
        await _link_artifact(
            dest,
            destination_report_uri,
            key="i2v-destination-report",
            what="The destination's report page (every row's latest outcome, over every run)",
        )
    counts = (summary.total, summary.completed, summary.skipped, summary.failed)
    logger.info("%d rows: %d completed, %d skipped, %d failed", *counts)
    return summary


def _parts(dest: Destination, spare: Destination | None, run: RunSpec, input_plan: InputPlan) -> Iterator[pa.Table]:
    """The run's manifest parts in row order, one at a time; every shard must have written one.

    A part the destination refused is read from the run's local fallback folder.
    """
    for shard in input_plan.shards:
        key = manifest.part_key(run.name, shard.index)
        table = manifest.read_part(dest, key)
        if table is None and spare is not None:
            table = manifest.read_part(spare, key)
        if table is None:
            raise RuntimeError(f"the manifest part of shard {shard.index} is missing")
        if table.num_rows != run.outcomes(shard):
            raise RuntimeError(f"shard {shard.index} has {table.num_rows} outcomes for {shard.rows} rows")
        yield table


async def _link_artifact(dest: Destination, uri: str, *, key: str, what: str) -> None:
    """A link a browser opens (a presigned HTTPS URL on S3, valid :data:`LINK_LIFETIME_S`), with the object's URI."""
    object_key = dest.key_for(uri)
    if object_key is None:
        return
    url = await asyncio.to_thread(dest.browser_url, object_key, expires_s=LINK_LIFETIME_S)
    lasts = "" if url.startswith("file:") else f"; the link works for {LINK_LIFETIME_S // 86_400} days"
    name = object_key.rsplit("/", 1)[-1]
    await acreate_link_artifact(url, link_text=name, key=key, description=f"{what}: {uri}{lasts}")


@task(name="write-shard-summary", cache_policy=NO_CACHE, persist_result=False)
async def publish_shard_summary(run: RunSpec, shard: Shard, counts: dict[str, Any]) -> None:
    """The shard's own summary artifact: its rows by status and where its part of the manifest is."""
    dest = resources.destination(run.dest)
    part = dest.uri_for(manifest.part_key(run.name, shard.index))
    lines = [
        f"# Shard {shard.index} of run {run.name}",
        "",
        f"Rows {shard.first_row}–{shard.first_row + shard.rows - 1} of `{run.input}` (CSV line {shard.line}).",
        "",
        "| rows | completed | skipped | failed |",
        "|---:|---:|---:|---:|",
        f"| {counts.get('rows', 0)} | {counts.get('completed', 0)} | {counts.get('skipped', 0)} "
        f"| {counts.get('failed', 0)} |",
        "",
        f"Its part of the run's manifest: `{part}`.",
    ]
    await acreate_markdown_artifact("\n".join(lines), key="i2v-shard-summary", description=f"Shard {shard.index}")
