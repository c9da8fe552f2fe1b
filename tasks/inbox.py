"""Tasks of the inbox flow: list waiting files, claim one, fetch it, mark it done.

The claim protocol is :mod:`i2v.storage.inbox_claims` (conditional writes in the inbox itself); the
one thing it asks of the orchestrator, whether the run holding a file's latest claim
has ended, is answered here from the Prefect API.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from i2v.errors import InputError
from i2v.storage import inbox_claims as claims
from i2v.storage.inbox_claims import Claim
from i2v.storage.local import LocalDestination
from i2v.storage.s3 import S3Destination
from orchestration import resources


@task(name="list-inbox", cache_policy=NO_CACHE, persist_result=False)
async def list_waiting(inbox: str) -> list[str]:
    """Input files under the inbox not marked done yet."""
    names = await asyncio.to_thread(claims.waiting, resources.destination(inbox))
    get_run_logger().info("%d file(s) waiting in %s", len(names), inbox)
    return names


@task(name="claim-file", task_run_name="claim-{name}", cache_policy=NO_CACHE, persist_result=False)
async def claim_file(inbox: str, name: str, owner: str, max_claims: int) -> Claim | None:
    """Claim the file for this run, or None if another run has it (or it is done, or given up)."""
    logger = get_run_logger()
    box = resources.destination(inbox)
    latest = await asyncio.to_thread(claims.latest_claim, box, name)
    ended = latest is not None and latest.owner != owner and await _run_ended(latest.owner)
    number = claims.next_claim(latest, owner_ended=ended, max_claims=max_claims)
    if number is None:
        assert latest is not None
        if ended:
            logger.warning("%s: claimed %d times and never done; left alone (see its claims)", name, latest.number)
        else:
            logger.info("%s: being processed by flow run %s", name, latest.owner)
        return None
    claim = await asyncio.to_thread(claims.try_claim, box, name, number, owner)
    if claim is None:
        logger.info("%s: another run claimed it first", name)
        return None
    if await asyncio.to_thread(claims.is_done, box, name):
        logger.info("%s: done by another run meanwhile", name)
        return None
    if latest is not None:
        logger.warning("%s: taken over from flow run %s, which ended without finishing it", name, latest.owner)
    return claim


@task(name="fetch-input", task_run_name="fetch-{name}", cache_policy=NO_CACHE, persist_result=False)
async def fetch_input(inbox: str, name: str, folder: str) -> str:
    """A local path of the file: itself in a local inbox, else a copy downloaded into ``folder``."""
    box = resources.destination(inbox)
    if isinstance(box, LocalDestination):
        return box.uri_for(name)
    if not isinstance(box, S3Destination):
        raise InputError(f"cannot read inbox files from {box.uri}")
    target = Path(folder) / Path(name).name
    await asyncio.to_thread(box.client.download_file, box.bucket, box._key(name), str(target))
    return str(target)


@task(name="mark-done", task_run_name="done-{claim.name}", cache_policy=NO_CACHE, persist_result=False)
async def mark_file_done(inbox: str, claim: Claim, outcome: dict[str, Any]) -> None:
    """Record that the file has been processed, so no later run takes it."""
    await asyncio.to_thread(claims.mark_done, resources.destination(inbox), claim, outcome)


async def _run_ended(flow_run_id: str) -> bool:
    """Whether the flow run has ended (any final state), or is unknown to the server."""
    try:
        run_id = UUID(flow_run_id)
    except ValueError:
        return True
    async with get_client() as client:
        try:
            run = await client.read_flow_run(run_id)
        except ObjectNotFound:
            return True
    return run.state is not None and run.state.is_final()
