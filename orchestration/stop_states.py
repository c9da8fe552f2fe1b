"""How a flow run that stopped early ends: Cancelled when Prefect cancelled it, else Failed.

A worker cancels a flow run by sending its process SIGTERM (:mod:`orchestration.resources` turns
that into a halt); only the flow run's own state tells a cancellation from any other
SIGTERM, such as a container being stopped.
"""

from __future__ import annotations

from typing import Any

from prefect import State, runtime
from prefect.client.orchestration import get_client
from prefect.states import Cancelled, Failed

from i2v.errors import Stopped
from orchestration import resources


async def stopped_state(stopped: Stopped, skipped: int) -> State[Any]:
    """The state to end in: a state rather than a raise, so the run ends with one clear message.

    Callers still get the exception from the state's result.
    """
    if resources.halted() == resources.TERMINATED and await _cancelling():
        return Cancelled(message=f"cancelled: nothing more was sent; {skipped} row(s) skipped; manifest written")
    reason = stopped.cause or stopped
    return Failed(message=str(reason), data=reason)


async def _cancelling() -> bool:
    """Whether this flow run is being cancelled."""
    if runtime.flow_run.id is None:
        return False
    async with get_client() as client:
        me = await client.read_flow_run(runtime.flow_run.id)
    return me.state is not None and me.state.is_cancelling()
