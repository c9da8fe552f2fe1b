"""The ``i2v`` command: run the flow, serve the emulator, or run the demo.

Prefect is imported only by the commands that run a flow, after the process has its
defaults (a generous ephemeral-server start-up timeout, no analytics), so that
``i2v emulator`` starts fast and ``i2v --help`` does not spin up a server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from i2v.errors import I2VError
from i2v.models import DEFAULT_MODEL, MODELS
from i2v.report import Summary
from i2v.rows import check_input
from i2v.run import DEFAULT_MAX_IN_FLIGHT, DEFAULT_ROWS_PER_SHARD
from i2v.settings import ApiSettings

_PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "i2v",
}
DEMO_KEY = "demo-key-not-secret"
REPO_ROOT = Path(__file__).resolve().parent.parent


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``i2v`` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
        return result
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
    run.add_argument("input", help="CSV with image_url and prompt columns")
    run.add_argument("--dest", required=True, help="output folder or s3://bucket/prefix")
    _add_run_options(run)
    run.set_defaults(handler=_run)

    demo = commands.add_parser("demo", help="run the pipeline end to end against the bundled emulator")
    demo.add_argument(
        "--csv", default=str(REPO_ROOT / "data" / "sample.csv"), help="input CSV (default: data/sample.csv)"
    )
    demo.add_argument("--dest", default="out/demo", help="output folder or s3://bucket/prefix (default: out/demo)")
    demo.add_argument("--generation-seconds", type=float, default=3.0, help="emulated generation time per job")
    demo.set_defaults(handler=_demo)

    models = commands.add_parser("models", help="list the models and their parameters")
    models.set_defaults(handler=_models)

    from i2v.emulator import cli as emulator_cli

    emulator = commands.add_parser("emulator", help="serve the AI/ML API emulator")
    emulator_cli.add_arguments(emulator)
    emulator.set_defaults(handler=emulator_cli.run)
    return parser


_RUN_HELP = """Generate one video per CSV row. The API key and base URL come from AIMLAPI_API_KEY and
AIMLAPI_BASE_URL; S3 credentials and endpoint from the usual AWS_* settings."""


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"default model for rows without one (default: {DEFAULT_MODEL})"
    )
    parser.add_argument("--api-path", choices=("universal", "legacy"), help="force an endpoint (default: the model's)")
    parser.add_argument("--resolution", help="default resolution for rows without one")
    parser.add_argument("--duration", type=int, help="default duration in seconds")
    parser.add_argument("--aspect-ratio", help="default aspect ratio (16:9, 9:16, 1:1)")
    parser.add_argument("--negative-prompt", help="default negative prompt")
    parser.add_argument("--seed", type=int, help="default seed")
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


def _run(args: argparse.Namespace) -> int:
    # Catch the usual mistakes before Prefect starts, so they read as one line.
    ApiSettings.from_env()
    check_input(args.input, model=args.model)
    summary = _run_flow(
        input=args.input,
        dest=args.dest,
        model=args.model,
        api_path=args.api_path,
        resolution=args.resolution,
        duration=args.duration,
        aspect_ratio=args.aspect_ratio,
        negative_prompt=args.negative_prompt,
        seed=args.seed,
        max_in_flight=args.max_in_flight,
        poll_interval_s=args.poll_interval,
        job_timeout_s=args.job_timeout,
        rows_per_shard=args.rows_per_shard,
        rows_per_task=args.rows_per_task,
    )
    return 0 if summary.failed == 0 else 1


def _demo(args: argparse.Namespace) -> int:
    from i2v.emulator.config import EmulatorConfig
    from i2v.emulator.server import running_emulator

    config = EmulatorConfig(api_key=DEMO_KEY, generation_seconds=args.generation_seconds)
    with running_emulator(config) as base_url:
        # The demo talks to its own emulator whatever the shell has configured.
        os.environ["AIMLAPI_BASE_URL"] = base_url
        os.environ["AIMLAPI_API_KEY"] = DEMO_KEY
        print(f"emulator listening on {base_url}")
        _run_flow(input=args.csv, dest=args.dest, poll_interval_s=1.0, job_timeout_s=300.0, max_in_flight=8)
    # The sample's failed rows are there on purpose: the demo succeeded if it reported them.
    return 0


def _run_flow(**params: Any) -> Summary:
    """Run the flow in this process; print the totals, the first failures and where the manifest is."""
    for name, value in _PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    from prefect import State

    from flows.generate import generate_videos
    from i2v.manifest import summarize
    from i2v.report import console_summary
    from tasks.resources import destination

    call: Any = generate_videos(**{k: v for k, v in params.items() if v is not None}, return_state=True)
    state: State[Any] = asyncio.run(call)
    result = state.result(raise_on_failure=False)
    dest = destination(params["dest"])
    summary = Summary(**result) if isinstance(result, dict) else summarize(dest)
    if summary.total:
        print()
        print(console_summary(summary, manifest_uri=dest.uri_for("manifest.parquet")))
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


if __name__ == "__main__":
    raise SystemExit(main())
