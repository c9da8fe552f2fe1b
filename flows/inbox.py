"""An inbox for scheduled use: every input file dropped under a prefix is processed once.

Each tick (a schedule, see ``prefect.yaml``) lists the CSV files under ``inbox`` (an
``s3://bucket/prefix`` or a folder) that are not marked done, and takes them one at a
time: it claims the file with a conditional write (:mod:`i2v.storage.inbox_claims`), runs
:func:`flows.generate.generate_videos` on it into ``<dest>/<file name without .csv>``,
and marks it done. Overlapping ticks, on one worker or many, share the files out and
never process one twice; a tick that dies leaves no lock, and a later tick takes its
file over once Prefect knows the run has ended.

Files are read where they are in a local inbox (so images named relative to the CSV
work); from S3 the CSV alone is downloaded, so its rows should name images by URL.
"""

from __future__ import annotations

import tempfile
from typing import Any

from prefect import State, flow, get_run_logger, runtime
from prefect.states import Failed

from flows.generate import generate_videos
from flows.parameters import takes_run_settings
from i2v.engine.spec import RunSettings
from i2v.storage.inbox_claims import INPUT_SUFFIXES
from tasks.inbox import claim_file, fetch_input, list_waiting, mark_file_done


@flow(name="inbox", validate_parameters=True)
@takes_run_settings(without=("run_name", "input_format"))
async def inbox(
    inbox: str, dest: str, max_files: int = 10, max_claims: int = 3, *, settings: RunSettings
) -> dict[str, Any] | State[Any]:
    """Process each CSV under ``inbox`` not done yet (at most ``max_files``), each into its own folder of ``dest``.

    A file whose run failed is tried again by a later tick, up to ``max_claims`` times.
    The other parameters are those of ``generate-videos``, for every file's run.
    """
    logger = get_run_logger()
    me = str(runtime.flow_run.id)
    processed: list[str] = []
    failed: list[str] = []
    passed: list[str] = []
    for name in await list_waiting(inbox):
        if len(processed) + len(failed) >= max_files:
            break
        claim = await claim_file(inbox, name, me, max_claims)
        if claim is None:
            passed.append(name)
            continue
        target = output_for(dest, name)
        logger.info("%s: claim %d is ours; generating into %s", name, claim.number, target)
        with tempfile.TemporaryDirectory(prefix="i2v-inbox-") as folder:
            path = await fetch_input(inbox, name, folder)
            call: Any = generate_videos(input=path, dest=target, **settings.parameters(), return_state=True)
            state: State[Any] = await call
        if state.is_completed():
            summary = await state.aresult()
            await mark_file_done(inbox, claim, {"dest": target, "summary": summary})
            processed.append(name)
        else:
            logger.error("%s: its run ended %s: %s", name, state.name, state.message)
            failed.append(name)
    result = {"processed": processed, "failed": failed, "passed": passed}
    if failed:
        listed = ", ".join(failed)
        return Failed(message=f"{len(failed)} file(s) failed: {listed}; a later tick tries again", data=result)
    return result


def output_for(dest: str, name: str) -> str:
    """Where a file's videos and manifest go: ``dest``/its name without the ``.csv``."""
    stem = name
    for suffix in INPUT_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return f"{dest.rstrip('/')}/{stem}"
