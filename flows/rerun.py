"""Re-run chosen rows of a manifest: from any machine that can read the destination.

The chosen rows (see :mod:`i2v.inputs.from_manifest`) are written back as an input file and run through
:func:`flows.generate.generate_videos` into the same destination, which re-attaches to
live jobs and skips stored videos as any run does.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from prefect import State, flow, get_run_logger

from flows.generate import generate_videos
from flows.parameters import takes_run_settings
from i2v.engine.spec import RunSettings
from i2v.inputs.from_manifest import Selection, kinds_of, split_manifest_uri
from tasks.inputs import select_rows


@flow(name="rerun-failed", validate_parameters=True)
@takes_run_settings(without=("retry", "resubmit_unknown", "input_format", "models"))
async def rerun_failed(
    manifest: str,
    select: Literal["retryable", "failed"] = "retryable",
    kinds: list[str] | None = None,
    include_unknown: bool = False,
    *,
    settings: RunSettings,
) -> dict[str, Any] | State[Any]:
    """Run again chosen rows of ``manifest`` (a destination's or a run's manifest, ``.parquet`` or ``.csv``).

    ``select`` chooses ``retryable`` failures, or every ``failed`` row; ``kinds`` narrows to
    those failure kinds; rows whose create may have been paid (``submit_unknown``) are
    chosen only with ``include_unknown``. The other parameters are those of
    ``generate-videos``. Each row keeps its ``row_index`` and ``id`` from the manifest.
    """
    dest, key = split_manifest_uri(manifest)
    selection = Selection(select, kinds_of(kinds), include_unknown)
    with tempfile.TemporaryDirectory(prefix="i2v-rerun-") as tmp:
        path = Path(tmp) / "rerun.csv"
        chosen = await select_rows(dest, key, selection, str(path))
        if chosen == 0:
            get_run_logger().info("no row of %s is to run again", manifest)
            return {"total": 0, "completed": 0, "failed": 0, "skipped": 0}
        chosen_again = replace(settings, retry="all", resubmit_unknown=include_unknown)
        result: dict[str, Any] | State[Any] = await generate_videos(
            input=str(path), dest=dest, **chosen_again.parameters()
        )
    return result
