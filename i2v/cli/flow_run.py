"""Running one flow in this process: Prefect's local server, the progress shown, the summary printed.

Prefect is imported here only when a flow is about to run, after the process has its
defaults (a generous ephemeral-server start-up timeout, no analytics), so that commands
that run no flow start fast and ``i2v --help`` does not spin up a server. ``i2v run``,
``i2v rerun`` and ``i2v demo`` all end here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from i2v.cli.progress_view import LiveBar, View, quiet_console, quiet_prefect
from i2v.engine.spec import safe_label
from i2v.errors import AuthError, I2VError, OutOfCredits
from i2v.report.summary import Summary

if TYPE_CHECKING:
    from orchestration.local_server import LocalServer

_PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "i2v",
    # Prefect's client-side telemetry, on in interactive terminals only: no calls to a
    # closed network, and no first-run notice printed over the progress bar.
    "DO_NOT_TRACK": "1",
    # The engine logs from threads outside any flow run: those lines are for the console only.
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}


def exit_status(summary: Summary | None) -> int:
    """The command's exit status for a run that ended with ``summary`` (None: halted by a signal)."""
    if summary is None:
        return 130  # halted by a signal; the watching process reports which
    unsent = summary.skipped_by_kind.get("stopped", 0)
    return 0 if summary.failed == 0 and not unsent and not summary.fallback else 1


def run_flow(
    name: str, params: dict[str, Any], *, view: View, as_json: bool = False, extra: dict[str, Any] | None = None
) -> Summary | None:
    """Run one flow in this process; print the totals, the first failures and where the manifest is.

    ``view`` says how the run shows its progress as it goes (see :mod:`i2v.cli.progress_view`).
    Returns None when a SIGINT halted the run (a second one exits at once).
    """
    # A server the user runs outlives this run: links into its UI are worth showing.
    lasting_server = bool(os.environ.get("PREFECT_API_URL"))
    for setting, value in _PREFECT_DEFAULTS.items():
        os.environ.setdefault(setting, value)
    from orchestration.local_server import start_local_server

    # Started first: Prefect's server boots while the flow's modules import.
    server = start_local_server()
    return _run_flow_on(server, name, params, view=view, as_json=as_json, links=lasting_server, extra=extra)


def _run_flow_on(
    server: LocalServer,
    name: str,
    params: dict[str, Any],
    *,
    view: View,
    as_json: bool = False,
    links: bool = False,
    extra: dict[str, Any] | None = None,
) -> Summary | None:
    from prefect import State

    from flows.generate import generate_videos
    from flows.rerun import rerun_failed
    from i2v.inputs.from_manifest import split_manifest_uri
    from i2v.manifest import fallback
    from i2v.manifest.merged import ROOT
    from i2v.manifest.run_table import summarize
    from i2v.report.comparison import comparison_key
    from i2v.report.summary import console_summary
    from orchestration import resources

    flow = {"generate_videos": generate_videos, "rerun_failed": rerun_failed}[name]
    run = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(3)}"
    params = {**{k: v for k, v in params.items() if v is not None}, "run_name": run}
    halted: list[str] = []
    if view == "quiet":
        quiet_console()
    # Prefect's step-by-step lines say nothing the bar does not; links to a server that ends with the run lead nowhere.
    quiet_prefect(info=view != "bar", links=links)
    shown = LiveBar(resources.progress_reader(safe_label(run)), sys.stderr) if view == "bar" else None

    async def watched() -> State[Any]:
        def halt() -> None:
            if halted:
                os._exit(130)
            halted.append("SIGINT")
            if shown is not None:
                shown.stopping("i2v: stopping: no new jobs are sent; signal again to stop at once")
            resources.halt_all("stopped by a signal")

        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError, RuntimeError):  # not the main thread: no signals
            loop.add_signal_handler(signal.SIGINT, halt)
        # return_state=True makes the call return its State; the flows' signatures (built
        # from RunSettings) hide that overload from the type checker.
        return cast("State[Any]", await flow(**params, return_state=True))

    server.wait_ready()
    with shown or contextlib.nullcontext():
        state = asyncio.run(watched())
    result = state.result(raise_on_failure=False)
    dest_uri = params["dest"] if "dest" in params else split_manifest_uri(params["manifest"])[0]
    dest = resources.destination(dest_uri)
    own = f"runs/{run}/manifest.parquet"
    # The destination, or the local folder that took the manifest when the destination refused it.
    home = fallback.holding(run) or dest
    summary = Summary(**result) if isinstance(result, dict) else summarize(home, own)
    if home is not dest:
        summary = replace(summary, fallback=home.uri)
        print(f"i2v: the destination {dest.uri} refused the run's manifest; it is in {home.uri}", file=sys.stderr)
    if as_json:
        document = {**summary.as_dict(), "run": run, "manifest": home.uri_for(own), **(extra or {})}
        if home is dest:
            document.update(destination_manifest=dest.uri_for(ROOT), report=dest.uri_for("report.html"))
            if summary.models:
                document.update(comparison=dest.uri_for(comparison_key(run)))
        print(json.dumps(document, indent=2, default=str))
    elif summary.total:
        if view != "quiet":  # a gap after the log lines or bar above
            print()
        print(console_summary(summary, manifest_uri=home.uri_for(own)))
        if home is dest:
            print(f"report: {dest.uri_for(f'runs/{run}/report.html')} (this run's rows)")
            print(f"destination's manifest: {dest.uri_for(ROOT)}; report: {dest.uri_for('report.html')}")
            if summary.models:
                print(f"models side by side: {dest.uri_for(comparison_key(run))}")
    if halted or (isinstance(result, BaseException) and resources.halted()):
        print(_resume_hint(home, own), file=sys.stderr)
    if halted:
        return None
    if isinstance(result, BaseException):
        if isinstance(result, (AuthError, OutOfCredits)) or not summary.total:
            raise result  # the key or the account: one line, exit 2
        # A limit or a destination that takes no more: the rows say what happened, exit 1.
        print(f"i2v: the run stopped early: {result}", file=sys.stderr)
        return summary
    if not isinstance(result, dict):
        raise RuntimeError(f"the flow ended in state {state.name}: {state.message}")
    return summary


def _resume_hint(home: Any, key: str) -> str:
    """How to go on after a stop: the same command, and what it will pick up."""
    from i2v.manifest.run_table import read_outcomes

    try:
        stopped = [o for o in read_outcomes(home, key) if o.error_kind == "stopped"]
    except I2VError:
        stopped = []
    running = sum(1 for o in stopped if o.generation_id)
    return (
        f"i2v: stopped. Run the same command to resume: {running} job(s) still at the provider will be"
        f" re-attached (not paid again), {len(stopped) - running} row(s) not sent yet will be sent."
    )
