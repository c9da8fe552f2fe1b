"""The ``i2v`` command: run the flow, serve the emulator, or run the demo.

Prefect is imported only by the commands that run a flow, after the process has its
defaults (a generous ephemeral-server start-up timeout, no analytics), so that
``i2v emulator`` starts fast and ``i2v --help`` does not spin up a server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from i2v.api.models import MODELS, get_model
from i2v.api.settings import ApiSettings, base_url_from_env
from i2v.cli import checks, lifetime
from i2v.cli import supervisor as watch
from i2v.cli.arguments import build_parser, columns_given, limits_given, row_defaults, selected
from i2v.cli.progress_view import LiveBar, View, choose_view, quiet_console, quiet_prefect
from i2v.demo import SAMPLE_CSV
from i2v.engine.spec import safe_label
from i2v.errors import AuthError, ConfigError, I2VError, OutOfCredits
from i2v.inputs import cost_estimate, costly, image_checks, input_problems
from i2v.inputs.comparison import split_models
from i2v.inputs.sources import Opener, is_s3, opener_for
from i2v.inputs.validation import RowSet, check_input, read_rows
from i2v.limits import Limits
from i2v.report.summary import Summary
from i2v.storage.s3_client import endpoint_from_env, make_client

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
#: Set in the process that runs the flow, under an ``i2v run`` that watches it.
_SUPERVISED = "I2V_SUPERVISED"
#: The process id of that ``i2v run``: the process that runs the flow ends when it is gone.
_SUPERVISOR = "I2V_SUPERVISOR_PID"
DEMO_KEY = "demo-key-not-secret"
REPO_ROOT = Path(__file__).resolve().parents[2]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``i2v`` console script; returns the exit status."""
    if os.environ.get(_SUPERVISED):
        supervisor = os.environ.get(_SUPERVISOR, "")
        if supervisor.isdigit():
            lifetime.end_when_orphaned(int(supervisor))
        # Started by _supervise with these blocked (a child inherits its parent's mask).
        signal.pthread_sigmask(signal.SIG_UNBLOCK, watch.FORWARDED)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # a bare `i2v`: what it can do, not an error
        parser.print_help()
        return 0
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        result: int = _HANDLERS[args.handler](args)
        return result
    except BrokenPipeError:
        # The reader went away (`i2v validate ... | head`): stop quietly, as other tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (I2VError, KeyboardInterrupt) as exc:
        if args.debug:
            raise
        message = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
        print(f"i2v: error: {message}", file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else 2


def _view(args: argparse.Namespace) -> View:
    """How this run shows its progress; the watching process and the one running the flow agree on it."""
    return choose_view(quiet=args.quiet, stream=sys.stderr)


def _opener(uri: str) -> Opener:
    """Local files, or S3 objects through a client from the usual AWS settings."""
    return opener_for(uri, make_client(endpoint_from_env()) if is_s3(uri) else None)


def _run(args: argparse.Namespace) -> int:
    # Catch the usual mistakes before Prefect starts, so they read as one line.
    ApiSettings.from_env()
    settings = checks.run_settings(_settings(args))
    columns = columns_given(args)
    check_input(
        args.input,
        model=args.model,
        format=args.format,
        opener=_opener(args.input),
        columns=columns,
        models=split_models(args.models),
    )
    checks.destination_writable(args.dest)
    if not os.environ.get(_SUPERVISED):
        # Said once, by the command the user typed, before anything is paid.
        for costly_default in _costly_defaults(args):
            print(f"i2v: warning: {costly_default.message()}", file=sys.stderr)
        return _supervise(args.argv, view=_view(args))
    params = {"input": args.input, "dest": args.dest, **settings.parameters()}
    summary = _run_flow("generate_videos", params, view=_view(args), as_json=args.json)
    return _exit_status(summary)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings as the command's options give them (see :class:`~i2v.engine.spec.RunSettings`)."""
    return {
        "model": args.model,
        "models": list(split_models(args.models)) or None,
        "api_path": args.api_path,
        "resolution": args.resolution,
        "duration": args.duration,
        "aspect_ratio": args.aspect_ratio,
        "negative_prompt": args.negative_prompt,
        "seed": args.seed,
        "max_in_flight": args.max_in_flight,
        "poll_interval_s": args.poll_interval,
        "job_timeout_s": args.job_timeout,
        "rows_per_shard": args.rows_per_shard,
        "rows_per_task": args.rows_per_task,
        "retry": "all" if selected(args) == "failed" else "retryable",
        "resubmit_unknown": args.include_unknown,
        "unknown_grace_s": args.unknown_grace,
        "max_failure_ratio": args.max_failure_ratio,
        "max_credits": args.max_credits,
        "limits": Limits(**limits_given(args)),
        "input_format": args.format,
        "columns": columns_given(args) or None,
    }


def _rerun(args: argparse.Namespace) -> int:
    """Read the manifest, say what will run and what is left; run it unless there is nothing to, or ``--dry-run``.

    All of that before Prefect starts and without the API key: a rerun with nothing to do
    costs a second, and a mistake in the manifest reads as one line.
    """
    from i2v.cli.plans import plan_text
    from i2v.inputs.from_manifest import Selection, kinds_of, locate, missing_images, plan_rerun

    ref = locate(args.manifest)
    dest = _destination(ref.dest)
    plan = plan_rerun(dest, ref.key, Selection(selected(args), kinds_of(args.kind), args.include_unknown))
    supervised = bool(os.environ.get(_SUPERVISED))
    if not supervised:
        shown = plan_text(plan, every_row=args.dry_run)
        if args.json and (args.dry_run or not plan.chosen):
            print(json.dumps({**plan.as_dict(), "dry_run": args.dry_run, "rows_to_run": _rows_of(plan)}, indent=2))
        elif not args.quiet or args.dry_run or not plan.chosen:
            print(shown, file=sys.stderr if args.json else sys.stdout)
    if args.dry_run or not plan.chosen:
        return 0
    lost = missing_images(dest, plan.chosen)
    if lost:
        rows = ", ".join(str(row.row_index) for row in lost[:10])
        raise ConfigError(
            f"{len(lost)} row(s) to run again (rows {rows}) name an input image missing from {dest.uri_for('inputs/')}"
        )
    ApiSettings.from_env()
    settings = checks.run_settings(
        {
            "max_in_flight": args.max_in_flight,
            "poll_interval_s": args.poll_interval,
            "job_timeout_s": args.job_timeout,
            "unknown_grace_s": args.unknown_grace,
            "max_failure_ratio": args.max_failure_ratio,
            "max_credits": args.max_credits,
        }
    )
    if not supervised:
        return _supervise(args.argv, view=_view(args))
    params = {
        "manifest": ref.uri,
        "select": selected(args),
        "kinds": args.kind or None,
        "include_unknown": args.include_unknown,
        "max_in_flight": settings.max_in_flight,
        "poll_interval_s": settings.poll_interval_s,
        "job_timeout_s": settings.job_timeout_s,
        "unknown_grace_s": settings.unknown_grace_s,
        "max_failure_ratio": settings.max_failure_ratio,
        "max_credits": settings.max_credits,
    }
    extra = {"plan": {**plan.as_dict(), "rows_to_run": _rows_of(plan)}}
    summary = _run_flow("rerun_failed", params, view=_view(args), as_json=args.json, extra=extra)
    return _exit_status(summary)


def _rows_of(plan: Any) -> list[dict[str, Any]]:
    return [
        {"row_index": row.row_index, "id": row.id, "error_kind": row.error_kind, "run": row.run} for row in plan.chosen
    ]


def _destination(uri: str) -> Any:
    from i2v.storage.from_uri import open_destination

    return open_destination(uri, s3_client=make_client(endpoint_from_env()) if is_s3(uri) else None)


def _status(args: argparse.Namespace) -> int:
    from i2v.cli.plans import status_text
    from i2v.manifest.status import status

    dest = _destination(args.dest)
    if not is_s3(args.dest) and not Path(args.dest).is_dir():
        raise ConfigError(f"{args.dest} is not a folder: give a destination (a folder or s3://bucket/prefix)")
    found = status(dest)
    print(json.dumps(found.as_dict(), indent=2, default=str) if args.json else status_text(found))
    return 0


def _exit_status(summary: Summary | None) -> int:
    if summary is None:
        return 130  # halted by a signal; the watching process reports which
    unsent = summary.skipped_by_kind.get("stopped", 0)
    return 0 if summary.failed == 0 and not unsent and not summary.fallback else 1


def _supervise(argv: list[str], *, view: View) -> int:
    """Run this command again in a child process of its own session, and watch it.

    A terminal's Ctrl-C reaches every process of the foreground group, Prefect's own server
    among them; in a session of its own the run keeps that server while it stops cleanly.
    This process then becomes :mod:`i2v.cli.supervisor`, which passes the run signals and exits
    with its status. Returns only if that program cannot be started (then it watches the
    run itself, the same way).

    The run does not outlive this process (see :mod:`i2v.cli.lifetime`): however this
    process ends, SIGKILL included, the run gets SIGTERM, stops as it does on any SIGTERM,
    and is killed if it has not ended within a grace period.
    """
    env = {**os.environ, _SUPERVISED: "1", _SUPERVISOR: str(os.getpid())}
    command = [sys.executable, "-m", "i2v.cli.main", *argv]
    # Blocked until the watcher's handlers are in place, so a signal meanwhile is held, not lost.
    signal.pthread_sigmask(signal.SIG_BLOCK, watch.FORWARDED)
    child = subprocess.Popen(  # noqa: S603 - this very command again
        command, env=env, start_new_session=True, preexec_fn=lifetime.ends_with_parent(signal.SIGTERM)
    )
    program = [sys.executable, "-S", watch.__file__, str(child.pid), view]
    if view != "quiet":
        # The run's process takes seconds to import and start Prefect's server: say so at once.
        print("i2v: starting the run (Prefect's local server first, then the input)…", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(OSError):
        os.execv(sys.executable, program)  # noqa: S606 - the interpreter running this, on a file of this package
    return watch.watch(child.pid, bar=view == "bar")


def _demo(args: argparse.Namespace) -> int:
    from i2v.emulator.config import EmulatorConfig
    from i2v.emulator.server import running_emulator

    # Full size: a scaled-down video would carry a resolution note in the manifest's mismatch column.
    config = EmulatorConfig(api_key=DEMO_KEY, generation_seconds=args.generation_seconds, short_side=None)
    with running_emulator(config) as base_url:
        # The demo talks to its own emulator whatever the shell has configured.
        os.environ["AIMLAPI_BASE_URL"] = base_url
        os.environ["AIMLAPI_API_KEY"] = DEMO_KEY
        print(f"emulator listening on {base_url}")
        params = {
            "input": args.input or args.csv or str(SAMPLE_CSV),
            "dest": args.dest,
            "poll_interval_s": 1.0,
            "job_timeout_s": 300.0,
            "max_in_flight": 8,
            "models": list(split_models(args.models)) or None,
        }
        _run_flow("generate_videos", params, view=choose_view(quiet=False, stream=sys.stderr))
    # The sample's failed rows are there on purpose: the demo succeeded if it reported them.
    return 0


def _run_flow(
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


def _models(args: argparse.Namespace) -> int:
    from i2v.cli import model_list

    if args.name:
        try:
            specs = [get_model(args.name)]
        except KeyError as exc:
            raise ConfigError(str(exc.args[0])) from None
    else:
        specs = list(MODELS.values())
    if args.json:
        print(json.dumps([model_list.as_dict(spec) for spec in specs], indent=1))
    else:
        print(model_list.text(specs, detailed=bool(args.name)))
    return 0


def _validate(args: argparse.Namespace) -> int:
    if args.concurrency < 1 or args.timeout <= 0:
        raise ConfigError("--concurrency must be at least 1 and --timeout more than 0")

    async def checked(rows: RowSet) -> input_problems.Validation:
        if args.no_network:
            return await input_problems.validate(args.input, rows, http=None)
        async with image_checks.image_client(timeout_s=args.timeout, concurrency=args.concurrency) as http:
            return await input_problems.validate(args.input, rows, http=http, concurrency=args.concurrency)

    def report(rows: RowSet) -> tuple[dict[str, Any], str, bool]:
        result = asyncio.run(checked(rows))
        return result.as_dict(), input_problems.validation_text(result), result.ok

    return _preflight(args, report)


def _estimate(args: argparse.Namespace) -> int:
    def report(rows: RowSet) -> tuple[dict[str, Any], str, bool]:
        if args.no_network:
            result = cost_estimate.estimate(args.input, rows)
        else:
            live, url, error = cost_estimate.live_prices(base_url_from_env())
            result = cost_estimate.estimate(args.input, rows, live=live, live_url=url, live_error=error)
        text = cost_estimate.estimate_text(result)
        dear = _costly_defaults(args)
        if dear:
            text += "\n\n" + "\n".join(f"warning: {item.message()}" for item in dear)
        document = {**result.as_dict(), "costly_defaults": [item.as_dict() for item in dear]}
        return document, text, not result.invalid

    return _preflight(args, report)


def _costly_defaults(args: argparse.Namespace) -> list[costly.CostlyDefault]:
    """Rows left to a model's dear defaults (see :mod:`i2v.inputs.costly`), as the command's options give them."""
    return costly.scan(
        args.input,
        model=args.model,
        models=split_models(args.models),
        route=args.api_path,
        defaults=row_defaults(args),
        format=args.format,
        opener=_opener(args.input),
        columns=columns_given(args),
    )


def _preflight(args: argparse.Namespace, report: Callable[[RowSet], tuple[dict[str, Any], str, bool]]) -> int:
    """Read the input as ``i2v run`` would, print ``report``'s table or JSON; 0 if it found nothing wrong, else 1."""
    try:
        rows = read_rows(
            args.input,
            model=args.model,
            route=args.api_path,
            defaults=row_defaults(args),
            limits=Limits(**limits_given(args)),
            format=args.format,
            opener=_opener(args.input),
            columns=columns_given(args),
            models=split_models(args.models),
        )
    except I2VError as exc:
        if args.json:  # a JSON reader gets a document too; the one-line error still goes to stderr
            print(json.dumps({"input": args.input, "ok": False, "error": str(exc)}))
        raise
    document, text, ok = report(rows)
    print(json.dumps(document, indent=2, ensure_ascii=False) if args.json else text)
    return 0 if ok else 1


def _emulator(args: argparse.Namespace) -> int:
    from i2v.emulator import cli as emulator_cli

    return emulator_cli.run(args)


_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _run,
    "rerun": _rerun,
    "demo": _demo,
    "models": _models,
    "status": _status,
    "validate": _validate,
    "estimate": _estimate,
    "emulator": _emulator,
}


if __name__ == "__main__":
    raise SystemExit(main())
