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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from i2v import preflight, watch
from i2v.errors import ConfigError, I2VError
from i2v.limits import MIB, Limits
from i2v.models import DEFAULT_MODEL, MODELS
from i2v.report import Summary
from i2v.rows import RowSet, check_input, read_rows
from i2v.run import DEFAULT_MAX_IN_FLIGHT, DEFAULT_ROWS_PER_SHARD, safe_label
from i2v.s3 import endpoint_from_env, make_client
from i2v.settings import ApiSettings
from i2v.sources import FORMATS, Opener, is_s3, opener_for
from i2v.terminal import LiveBar, View, choose_view, quiet_console

if TYPE_CHECKING:
    from tasks.server import LocalServer

_PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "i2v",
    # Prefect's client-side telemetry, on in interactive terminals only: no calls to a
    # closed network, and no first-run notice printed over the progress bar.
    "DO_NOT_TRACK": "1",
}
#: Set in the process that runs the flow, under an ``i2v run`` that watches it.
_SUPERVISED = "I2V_SUPERVISED"
DEMO_KEY = "demo-key-not-secret"
REPO_ROOT = Path(__file__).resolve().parent.parent


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``i2v`` console script; returns the exit status."""
    if os.environ.get(_SUPERVISED):
        # Started by _supervise with these blocked (a child inherits its parent's mask).
        signal.pthread_sigmask(signal.SIG_UNBLOCK, watch.FORWARDED)
    parser = _parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        result: int = args.handler(args)
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="i2v", description="Bulk image-to-video generation on AI/ML API.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="generate one video per CSV row", description=_RUN_HELP)
    run.add_argument("input", help="CSV, JSON Lines or Parquet file (local path or s3://bucket/key)")
    run.add_argument("--dest", required=True, help="output folder or s3://bucket/prefix")
    _add_run_options(run)
    _add_format_option(run)
    _add_limit_options(run)
    _add_quiet_option(run)
    run.add_argument(
        "--retry-failed",
        choices=("retryable", "all"),
        default="retryable",
        help="failures of earlier runs to try again: those that may pass, or all (default: %(default)s)",
    )
    run.add_argument(
        "--resubmit-unknown",
        action="store_true",
        help="send again creates whose outcome was never known (each may then be paid twice)",
    )
    run.set_defaults(handler=_run)

    rerun = commands.add_parser("rerun", help="run again chosen rows of a manifest", description=_RERUN_HELP)
    rerun.add_argument("manifest", help="a destination's manifest.parquet, or runs/<run>/manifest.parquet")
    which = rerun.add_mutually_exclusive_group()
    which.add_argument("--retryable", dest="select", action="store_const", const="retryable", help="(default)")
    which.add_argument("--failed", dest="select", action="store_const", const="failed", help="every failed row")
    rerun.add_argument("--kind", action="append", default=[], metavar="KIND", help="only this error_kind (repeatable)")
    rerun.add_argument(
        "--include-unknown", action="store_true", help="also rows whose create may have been paid (submit_unknown)"
    )
    rerun.add_argument("--max-in-flight", type=int, default=DEFAULT_MAX_IN_FLIGHT, help="(default: %(default)s)")
    rerun.add_argument("--poll-interval", type=float, default=10.0, help="(default: %(default)s)")
    rerun.add_argument("--job-timeout", type=float, default=900.0, help="(default: %(default)s)")
    _add_policy_options(rerun)
    _add_quiet_option(rerun)
    rerun.set_defaults(handler=_rerun, select="retryable")

    demo = commands.add_parser("demo", help="run the pipeline end to end against the bundled emulator")
    demo.add_argument(
        "--csv", default=str(REPO_ROOT / "data" / "sample.csv"), help="input CSV (default: data/sample.csv)"
    )
    demo.add_argument("--dest", default="out/demo", help="output folder or s3://bucket/prefix (default: out/demo)")
    demo.add_argument("--generation-seconds", type=float, default=3.0, help="emulated generation time per job")
    demo.set_defaults(handler=_demo)

    models = commands.add_parser("models", help="list the models and their parameters")
    models.set_defaults(handler=_models)

    validate = commands.add_parser(
        "validate", help="check every row and image before a run", description=_VALIDATE_HELP
    )
    validate.add_argument("input", help="CSV, JSON Lines or Parquet file (local path or s3://bucket/key)")
    _add_row_options(validate)
    _add_format_option(validate)
    validate.add_argument("--json", action="store_true", help="print a JSON document instead of a table")
    validate.add_argument("--no-network", action="store_true", help="do not check that image URLs answer")
    validate.add_argument(
        "--concurrency",
        type=int,
        default=preflight.DEFAULT_CONCURRENCY,
        help="image URLs asked at once (default: %(default)s)",
    )
    validate.add_argument(
        "--timeout",
        type=float,
        default=preflight.DEFAULT_TIMEOUT_S,
        help="seconds an image URL may take to answer (default: %(default)s)",
    )
    _add_limit_options(validate)
    validate.set_defaults(handler=_validate)

    estimate = commands.add_parser("estimate", help="jobs and expected cost of a run", description=_ESTIMATE_HELP)
    estimate.add_argument("input", help="CSV, JSON Lines or Parquet file (local path or s3://bucket/key)")
    _add_row_options(estimate)
    _add_format_option(estimate)
    estimate.add_argument("--json", action="store_true", help="print a JSON document instead of a table")
    _add_limit_options(estimate)
    estimate.set_defaults(handler=_estimate)

    from i2v.emulator import cli as emulator_cli

    emulator = commands.add_parser("emulator", help="serve the AI/ML API emulator")
    emulator_cli.add_arguments(emulator)
    emulator.set_defaults(handler=emulator_cli.run)
    return parser


_RUN_HELP = """Generate one video per CSV row. The API key and base URL come from AIMLAPI_API_KEY and
AIMLAPI_BASE_URL; S3 credentials and endpoint from the usual AWS_* settings."""


def _add_row_options(parser: argparse.ArgumentParser) -> None:
    """What rows ask for when their cells are blank: the run's defaults."""
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"default model for rows without one (default: {DEFAULT_MODEL})"
    )
    parser.add_argument("--api-path", choices=("universal", "legacy"), help="force an endpoint (default: the model's)")
    parser.add_argument("--resolution", help="default resolution for rows without one")
    parser.add_argument("--duration", type=int, help="default duration in seconds")
    parser.add_argument("--aspect-ratio", help="default aspect ratio (16:9, 9:16, 1:1)")
    parser.add_argument("--negative-prompt", help="default negative prompt")
    parser.add_argument("--seed", type=int, help="default seed")


def _add_format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=FORMATS, help="input format (default: from the extension; CSV when it says nothing)"
    )


def _row_defaults(args: argparse.Namespace) -> dict[str, Any]:
    given = {
        "resolution": args.resolution,
        "duration": args.duration,
        "aspect_ratio": args.aspect_ratio,
        "negative_prompt": args.negative_prompt,
        "seed": args.seed,
    }
    return {name: value for name, value in given.items() if value is not None}


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    _add_row_options(parser)
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=DEFAULT_MAX_IN_FLIGHT,
        help="most jobs at the provider at once; fewer while it answers 429 (default: %(default)s)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=10.0,
        help="seconds between status polls until job times are learned (default: %(default)s)",
    )
    parser.add_argument("--job-timeout", type=float, default=900.0, help="seconds a job may take (default: 900)")
    parser.add_argument(
        "--rows-per-shard",
        type=int,
        default=DEFAULT_ROWS_PER_SHARD,
        help="rows per shard, the unit Prefect tracks and holds in memory (default: %(default)s)",
    )
    parser.add_argument(
        "--rows-per-task", type=int, help="rows per Prefect task run (default: one for small shards, else 1/16 of one)"
    )
    _add_policy_options(parser)


def _add_limit_options(parser: argparse.ArgumentParser) -> None:
    """The bounds on what a run reads and downloads (README "Security"; i2v/limits.py)."""
    limits = parser.add_argument_group("limits")
    default = Limits()
    limits.add_argument(
        "--max-rows", type=int, metavar="N", help=f"most rows in one input (default: {default.max_rows:,})"
    )
    limits.add_argument(
        "--max-prompt-chars", type=int, metavar="N", help="longest prompt sent (default: the model's own limit)"
    )
    limits.add_argument(
        "--max-image-mb",
        type=float,
        metavar="MB",
        help=f"largest local or inline image (default: {default.max_image_bytes // MIB})",
    )
    limits.add_argument(
        "--max-video-mb",
        type=float,
        metavar="MB",
        help=f"largest video downloaded (default: {default.max_video_bytes // MIB})",
    )
    limits.add_argument("--allow-http-images", action="store_true", help="accept http:// image URLs (not just https)")
    limits.add_argument("--image-root", metavar="DIR", help="folder local images must be in (default: the input's)")


def _add_quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar or lines and no log lines below warnings; only the end summary and errors",
    )


def _view(args: argparse.Namespace) -> View:
    """How this run shows its progress; the watching process and the one running the flow agree on it."""
    return choose_view(quiet=args.quiet, stream=sys.stderr)


def _opener(uri: str) -> Opener:
    """Local files, or S3 objects through a client from the usual AWS settings."""
    return opener_for(uri, make_client(endpoint_from_env()) if is_s3(uri) else None)


def _limits(args: argparse.Namespace) -> dict[str, Any]:
    """The flow's ``limits`` parameter from the options given; the rest keep their defaults."""
    given = {
        "max_rows": args.max_rows,
        "max_prompt_chars": args.max_prompt_chars,
        "max_image_bytes": None if args.max_image_mb is None else int(args.max_image_mb * MIB),
        "max_video_bytes": None if args.max_video_mb is None else int(args.max_video_mb * MIB),
        "allow_http_images": args.allow_http_images or None,
        "image_root": str(Path(args.image_root).resolve()) if args.image_root else None,
    }
    chosen = {name: value for name, value in given.items() if value is not None}
    Limits(**chosen)  # a bad value is a usage error here, not a failed flow run
    return chosen


def _add_policy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-failure-ratio",
        type=float,
        metavar="R",
        help="stop sending once more than this share of the rows worked on failed (0 to 1; judged after 20)",
    )
    parser.add_argument(
        "--max-credits", type=float, metavar="C", help="stop sending before estimated spend would pass C credits"
    )


_RERUN_HELP = """Run again chosen rows of a manifest into the same destination: by default the rows whose
failure may pass another time. Needs only the manifest: each row carries its inputs."""


def _run(args: argparse.Namespace) -> int:
    # Catch the usual mistakes before Prefect starts, so they read as one line.
    ApiSettings.from_env()
    check_input(args.input, model=args.model, format=args.format, opener=_opener(args.input))
    limits = _limits(args)
    if not os.environ.get(_SUPERVISED):
        return _supervise(args.argv, view=_view(args))
    summary = _run_flow(
        "generate_videos",
        {
            "input": args.input,
            "dest": args.dest,
            "model": args.model,
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
            "retry": args.retry_failed,
            "resubmit_unknown": args.resubmit_unknown,
            "max_failure_ratio": args.max_failure_ratio,
            "max_credits": args.max_credits,
            "limits": limits,
            "input_format": args.format,
        },
        view=_view(args),
    )
    return _exit_status(summary)


def _rerun(args: argparse.Namespace) -> int:
    ApiSettings.from_env()
    if not os.environ.get(_SUPERVISED):
        return _supervise(args.argv, view=_view(args))
    summary = _run_flow(
        "rerun_failed",
        {
            "manifest": args.manifest,
            "select": args.select,
            "kinds": args.kind or None,
            "include_unknown": args.include_unknown,
            "max_in_flight": args.max_in_flight,
            "poll_interval_s": args.poll_interval,
            "job_timeout_s": args.job_timeout,
            "max_failure_ratio": args.max_failure_ratio,
            "max_credits": args.max_credits,
        },
        view=_view(args),
    )
    return _exit_status(summary)


def _exit_status(summary: Summary | None) -> int:
    if summary is None:
        return 130  # halted by a signal; the watching process reports which
    return 0 if summary.failed == 0 else 1


def _supervise(argv: list[str], *, view: View) -> int:
    """Run this command again in a child process of its own session, and watch it.

    A terminal's Ctrl-C reaches every process of the foreground group, Prefect's own server
    among them; in a session of its own the run keeps that server while it stops cleanly.
    This process then becomes :mod:`i2v.watch`, which passes the run signals and exits
    with its status. Returns only if that program cannot be started (then it watches the
    run itself, the same way).
    """
    env = {**os.environ, _SUPERVISED: "1"}
    command = [sys.executable, "-m", "i2v.cli", *argv]
    # Blocked until the watcher's handlers are in place, so a signal meanwhile is held, not lost.
    signal.pthread_sigmask(signal.SIG_BLOCK, watch.FORWARDED)
    child = subprocess.Popen(command, env=env, start_new_session=True)  # noqa: S603 - this very command again
    program = [sys.executable, "-S", watch.__file__, str(child.pid), view]
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
            "input": args.csv,
            "dest": args.dest,
            "poll_interval_s": 1.0,
            "job_timeout_s": 300.0,
            "max_in_flight": 8,
        }
        _run_flow("generate_videos", params, view=choose_view(quiet=False, stream=sys.stderr))
    # The sample's failed rows are there on purpose: the demo succeeded if it reported them.
    return 0


def _run_flow(name: str, params: dict[str, Any], *, view: View) -> Summary | None:
    """Run one flow in this process; print the totals, the first failures and where the manifest is.

    ``view`` says how the run shows its progress as it goes (see :mod:`i2v.terminal`).
    Returns None when a SIGINT halted the run (a second one exits at once).
    """
    for setting, value in _PREFECT_DEFAULTS.items():
        os.environ.setdefault(setting, value)
    from tasks.server import start_local_server

    # Started first: Prefect's server boots while the flow's modules import.
    return _run_flow_on(start_local_server(), name, params, view=view)


def _run_flow_on(server: LocalServer, name: str, params: dict[str, Any], *, view: View) -> Summary | None:
    from prefect import State

    from flows.generate import generate_videos
    from flows.rerun import rerun_failed
    from i2v.manifest import summarize
    from i2v.merged import ROOT
    from i2v.report import console_summary
    from i2v.rerun import split_manifest_uri
    from tasks import resources

    flow = {"generate_videos": generate_videos, "rerun_failed": rerun_failed}[name]
    run = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(3)}"
    params = {**{k: v for k, v in params.items() if v is not None}, "run_name": run}
    halted: list[str] = []
    if view == "quiet":
        quiet_console()
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
        state: State[Any] = await flow(**params, return_state=True)  # type: ignore[operator]
        return state

    server.wait_ready()
    with shown or contextlib.nullcontext():
        state = asyncio.run(watched())
    result = state.result(raise_on_failure=False)
    dest_uri = params["dest"] if "dest" in params else split_manifest_uri(params["manifest"])[0]
    dest = resources.destination(dest_uri)
    own = f"runs/{run}/manifest.parquet"
    summary = Summary(**result) if isinstance(result, dict) else summarize(dest, own)
    if summary.total:
        if view != "quiet":  # a gap after the log lines or bar above
            print()
        print(console_summary(summary, manifest_uri=dest.uri_for(own)))
        print(f"destination's manifest: {dest.uri_for(ROOT)}; report: {dest.uri_for('report.html')}")
    if halted:
        return None
    if isinstance(result, BaseException):
        raise result
    if not isinstance(result, dict):
        raise RuntimeError(f"the flow ended in state {state.name}: {state.message}")
    return summary


def _models(args: argparse.Namespace) -> int:
    for spec in MODELS.values():
        print(f"{spec.name}  ({spec.summary})")
        for route in spec.routes.values():
            marker = " (default)" if route.name == spec.default_route else ""
            print(f"  {route.name}{marker}: POST {route.path}")
            for name, param in route.params.items():
                choices = f" one of {', '.join(map(str, param.choices))}" if param.choices else ""
                default = f", default {param.default}" if param.default is not None else ""
                print(f"    {name}: {param.type}{choices}{default}")
    return 0


_VALIDATE_HELP = """Check an input before a run: every row against the model registry, rows asking for the
same work as an earlier row, ids reused for other work, image URLs (a HEAD each), local and inline
images. Exits 0 when every row is fine, 1 when any row has a problem, 2 when the file itself
cannot be used."""
_ESTIMATE_HELP = """Jobs and expected cost of running an input, by model, resolution and duration, from the
price table in i2v/prices.py. Rows asking for the same work count once; invalid rows are listed,
not counted (exit 1). Exits 2 when the file itself cannot be used."""


def _validate(args: argparse.Namespace) -> int:
    if args.concurrency < 1 or args.timeout <= 0:
        raise ConfigError("--concurrency must be at least 1 and --timeout more than 0")

    async def checked(rows: RowSet) -> preflight.Validation:
        if args.no_network:
            return await preflight.validate(args.input, rows, http=None)
        async with preflight.image_client(timeout_s=args.timeout, concurrency=args.concurrency) as http:
            return await preflight.validate(args.input, rows, http=http, concurrency=args.concurrency)

    def report(rows: RowSet) -> tuple[dict[str, Any], str, bool]:
        result = asyncio.run(checked(rows))
        return result.as_dict(), preflight.validation_text(result), result.ok

    return _preflight(args, report)


def _estimate(args: argparse.Namespace) -> int:
    def report(rows: RowSet) -> tuple[dict[str, Any], str, bool]:
        result = preflight.estimate(args.input, rows)
        return result.as_dict(), preflight.estimate_text(result), not result.invalid

    return _preflight(args, report)


def _preflight(args: argparse.Namespace, report: Callable[[RowSet], tuple[dict[str, Any], str, bool]]) -> int:
    """Read the input as ``i2v run`` would, print ``report``'s table or JSON; 0 if it found nothing wrong, else 1."""
    try:
        rows = read_rows(
            args.input,
            model=args.model,
            route=args.api_path,
            defaults=_row_defaults(args),
            limits=Limits(**_limits(args)),
            format=args.format,
            opener=_opener(args.input),
        )
    except I2VError as exc:
        if args.json:  # a JSON reader gets a document too; the one-line error still goes to stderr
            print(json.dumps({"input": args.input, "ok": False, "error": str(exc)}))
        raise
    document, text, ok = report(rows)
    print(json.dumps(document, indent=2, ensure_ascii=False) if args.json else text)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
