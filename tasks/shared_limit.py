"""The task that checks the provider's shared limit exists before a fan-out starts its shards."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from i2v.errors import ConfigError
from orchestration.shared_slots import LIMIT_ENV, limit_name


@task(name="check-shared-limit", cache_policy=NO_CACHE, persist_result=False)
async def check_shared_limit() -> int | None:
    """The shared limit's size; fails the run at once if ``I2V_CONCURRENCY_LIMIT`` names none."""
    logger = get_run_logger()
    name = limit_name()
    if name is None:
        logger.warning("%s is not set: each worker's admission control acts alone", LIMIT_ENV)
        return None
    async with get_client() as client:
        try:
            limit = await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            raise ConfigError(
                f"no global concurrency limit named {name!r} on the Prefect server ({LIMIT_ENV});"
                f" create it with `prefect gcl create {name} --limit N`"
            ) from None
    logger.info("jobs at the provider from all workers together: at most %d (limit %r)", limit.limit, name)
    return limit.limit
