"""``i2v status`` and ``i2v rerun``: the commands that start from a destination's manifests.

``status`` says what a destination holds; ``rerun`` reads one run's manifest, says what it
will run again and what it leaves, and runs it (see :mod:`i2v.inputs.from_manifest`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from i2v.api.settings import ApiSettings
from i2v.cli import checks
from i2v.cli.arguments import selected
from i2v.cli.flow_run import exit_status, run_flow
from i2v.cli.locations import destination
from i2v.cli.progress_view import choose_view
from i2v.cli.supervised import is_supervised, supervise
from i2v.errors import ConfigError
from i2v.inputs.sources import is_s3


def status(args: argparse.Namespace) -> int:
    """``i2v status``: the destination's runs and rows, as a table or ``--json``."""
    from i2v.cli.plans import status_text
    from i2v.manifest.status import status as destination_status

    dest = destination(args.dest)
    if not is_s3(args.dest) and not Path(args.dest).is_dir():
        raise ConfigError(f"{args.dest} is not a folder: give a destination (a folder or s3://bucket/prefix)")
    found = destination_status(dest)
    print(json.dumps(found.as_dict(), indent=2, default=str) if args.json else status_text(found))
    return 0


def rerun(args: argparse.Namespace) -> int:
    """Read the manifest, say what will run and what is left; run it unless there is nothing to, or ``--dry-run``.

    All of that before Prefect starts and without the API key: a rerun with nothing to do
    costs a second, and a mistake in the manifest reads as one line.
    """
    from i2v.cli.plans import plan_text
    from i2v.inputs.from_manifest import Selection, kinds_of, locate, missing_images, plan_rerun

    ref = locate(args.manifest)
    dest = destination(ref.dest)
    plan = plan_rerun(dest, ref.key, Selection(selected(args), kinds_of(args.kind), args.include_unknown))
    supervised = is_supervised()
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
    view = choose_view(quiet=args.quiet, stream=sys.stderr)
    if not supervised:
        return supervise(args.argv, view=view)
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
    summary = run_flow("rerun_failed", params, view=view, as_json=args.json, extra=extra)
    return exit_status(summary)


def _rows_of(plan: Any) -> list[dict[str, Any]]:
    return [
        {"row_index": row.row_index, "id": row.id, "error_kind": row.error_kind, "run": row.run} for row in plan.chosen
    ]
