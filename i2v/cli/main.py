"""The ``i2v`` command's entry point: parse the arguments, dispatch to the command, and ``i2v run`` itself.

The other commands live by kind: :mod:`~i2v.cli.preflight_commands` (validate, estimate),
:mod:`~i2v.cli.manifest_commands` (status, rerun), :mod:`~i2v.cli.model_list` (models) and
:mod:`~i2v.cli.emulator_commands` (demo, emulator). A run is watched from outside
(:mod:`~i2v.cli.supervised`) and runs its flow in the child (:mod:`~i2v.cli.flow_run`),
which alone imports Prefect, so that ``i2v emulator`` starts fast and ``i2v --help`` does
not spin up a server.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from i2v.api.settings import ApiSettings
from i2v.cli import checks, emulator_commands, manifest_commands, model_list, preflight_commands
from i2v.cli.arguments import build_parser, columns_given, limits_given, selected
from i2v.cli.flow_run import exit_status, run_flow
from i2v.cli.locations import opener
from i2v.cli.progress_view import View, choose_view
from i2v.cli.supervised import is_supervised, join_supervisor, supervise
from i2v.errors import I2VError
from i2v.inputs.comparison import split_models
from i2v.inputs.validation import check_input
from i2v.limits import Limits

REPO_ROOT = Path(__file__).resolve().parents[2]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``i2v`` console script; returns the exit status."""
    join_supervisor()
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


def _run(args: argparse.Namespace) -> int:
    # Catch the usual mistakes before Prefect starts, so they read as one line.
    ApiSettings.from_env()
    settings = checks.run_settings(_settings(args))
    columns = columns_given(args)
    check_input(
        args.input,
        model=args.model,
        format=args.format,
        opener=opener(args.input),
        columns=columns,
        models=split_models(args.models),
    )
    checks.destination_writable(args.dest)
    if not is_supervised():
        # Said once, by the command the user typed, before anything is paid.
        for costly_default in preflight_commands.costly_defaults(args):
            print(f"i2v: warning: {costly_default.message()}", file=sys.stderr)
        return supervise(args.argv, view=_view(args))
    params = {"input": args.input, "dest": args.dest, **settings.parameters()}
    summary = run_flow("generate_videos", params, view=_view(args), as_json=args.json)
    return exit_status(summary)


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


_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _run,
    "rerun": manifest_commands.rerun,
    "demo": emulator_commands.demo,
    "models": model_list.command,
    "status": manifest_commands.status,
    "validate": preflight_commands.validate,
    "estimate": preflight_commands.estimate,
    "emulator": emulator_commands.emulator,
}


if __name__ == "__main__":
    raise SystemExit(main())
