"""The task that writes the manifest and publishes the run's artifacts."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from i2v import report
from i2v.manifest import write_manifest
from i2v.outcomes import RowOutcome
from tasks import resources


@task(name="write-manifest", cache_policy=NO_CACHE, persist_result=False)
def publish_manifest(dest: str, outcomes: list[RowOutcome], run_name: str, wall_s: float) -> report.Summary:
    """Write the manifest (Parquet + CSV) and the summary, failed-rows and link artifacts."""
    destination = resources.destination(dest)
    written = write_manifest(destination, outcomes, run_name=run_name)
    summary = report.summarize(outcomes, wall_s=wall_s)
    manifest_uri = written["manifest.parquet"]
    create_markdown_artifact(
        report.markdown(summary, dest_uri=destination.uri, manifest_uri=manifest_uri),
        key="i2v-run-summary",
        description="Outcome of the image-to-video run",
    )
    failures = report.failed_rows(outcomes)
    if failures:
        create_table_artifact(failures, key="i2v-failed-rows", description="Rows that did not produce a video")
    create_link_artifact(
        _link(manifest_uri), link_text="manifest.parquet", key="i2v-manifest", description="The run's manifest"
    )
    return summary


def _link(uri: str) -> str:
    return uri if "://" in uri else f"file://{uri}"
