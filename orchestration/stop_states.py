"""How a flow run ends, in a state whose name says what happened to its rows.

A run whose rows all ended well is Completed. One with failed rows (within what its
failure policy allows) is Completed named "Completed with failures", so the list of runs
says so at a glance. One whose destination refused its manifest is Failed. One that
stopped early is Cancelled when Prefect cancelled it, else Failed: a worker cancels a
flow run by sending its process SIGTERM (:mod:`orchestration.resources` turns that into
a halt), and only the flow run's own state tells a cancellation from any other SIGTERM,
such as a container being stopped.
"""

from __future__ import annotations

from typing import Any

from prefect import State, runtime
from prefect.client.orchestration import get_client
from prefect.states import Cancelled, Completed, Failed

from i2v.errors import Stopped
from i2v.report.summary import Summary
from orchestration import resources


async def stopped_state(stopped: Stopped, skipped: int) -> State[Any]:
    """The state to end in: a state rather than a raise, so the run ends with one clear message.

    Callers still get the exception from the state's result.
    """
    if resources.halted() == resources.TERMINATED and await _cancelling():
        return Cancelled(message=f"cancelled: nothing more was sent; {skipped} row(s) skipped; manifest written")
    reason = stopped.cause or stopped
    return Failed(message=str(reason), data=reason)


def finished_state(summary: Summary, result: dict[str, Any]) -> dict[str, Any] | State[Any]:
    """A run that went to its end: its result, in a state named for failed rows if it had any.

    A run whose destination refused its manifest ends Failed, saying where the manifest is.
    """
    if summary.fallback:
        return Failed(
            message=f"the destination refused the run's manifest: it is in {summary.fallback}"
            f" ({summary.failed} of {summary.total} row(s) failed)",
            data=result,
        )
    if summary.failed == 0:
        return result
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(summary.failures_by_kind.items()))
    return Completed(
        name="Completed with failures",
        message=f"{summary.failed} of {summary.total} row(s) failed ({kinds}); the manifest says why",
        data=result,
    )


async def _cancelling() -> bool:
    """Whether this flow run is being cancelled."""
    if runtime.flow_run.id is None:
        return False
    async with get_client() as client:
        me = await client.read_flow_run(runtime.flow_run.id)
    return me.state is not None and me.state.is_cancelling()
