"""Tasks that read the CSV and find the work already done."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from i2v.models import RouteName
from i2v.outcomes import RowOutcome
from i2v.rows import Row, RowSet, read_rows
from i2v.transfer import VIDEO_PREFIX
from tasks import resources


@task(name="read-rows", cache_policy=NO_CACHE, persist_result=False)
def load_rows(csv: str, model: str, api_path: RouteName | None, defaults: Mapping[str, Any]) -> RowSet:
    """Read and validate the CSV; invalid rows are reported, not raised."""
    logger = get_run_logger()
    rows = read_rows(csv, model=model, route=api_path, defaults=defaults)
    logger.info(
        "%d rows: %d valid, %d invalid, %d duplicate",
        rows.total,
        len(rows.rows),
        len(rows.invalid),
        len(rows.duplicates),
    )
    for bad in rows.invalid:
        logger.warning("invalid input: %s", bad.message)
    if rows.ignored_columns:
        logger.warning("ignored columns (not a parameter of any model): %s", ", ".join(rows.ignored_columns))
    return rows


@task(name="check-destination", cache_policy=NO_CACHE, persist_result=False)
def find_done_rows(dest: str, rows: list[Row]) -> dict[str, RowOutcome]:
    """Rows whose verified video a previous run already stored, by row key."""
    destination = resources.destination(dest)
    destination.check()
    done = resources.journal(dest).done((row.key for row in rows), video_prefix=VIDEO_PREFIX)
    if done:
        get_run_logger().info("%d rows already have their video in %s; skipping them", len(done), destination.uri)
    return done
