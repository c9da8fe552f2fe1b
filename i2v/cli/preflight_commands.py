"""``i2v validate`` and ``i2v estimate``: the input checked and priced as ``i2v run`` would read it, nothing sent.

Both read the input with the run's options and print a table (or ``--json``); the exit
status is 0 when nothing is wrong, else 1. :func:`costly_defaults` is also what ``i2v run``
warns of before it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from typing import Any

from i2v.api.settings import base_url_from_env
from i2v.cli.arguments import columns_given, limits_given, row_defaults
from i2v.cli.locations import opener
from i2v.errors import ConfigError, I2VError
from i2v.inputs import cost_estimate, costly, image_checks, input_problems
from i2v.inputs.comparison import split_models
from i2v.inputs.validation import RowSet, read_rows
from i2v.limits import Limits


def validate(args: argparse.Namespace) -> int:
    """``i2v validate``: every row checked, and (unless ``--no-network``) every image fetched and decoded."""
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


def estimate(args: argparse.Namespace) -> int:
    """``i2v estimate``: what the rows cost, by the live catalogue's prices or the dated table."""

    def report(rows: RowSet) -> tuple[dict[str, Any], str, bool]:
        if args.no_network:
            result = cost_estimate.estimate(args.input, rows)
        else:
            live, url, error = cost_estimate.live_prices(base_url_from_env())
            result = cost_estimate.estimate(args.input, rows, live=live, live_url=url, live_error=error)
        text = cost_estimate.estimate_text(result)
        dear = costly_defaults(args)
        if dear:
            text += "\n\n" + "\n".join(f"warning: {item.message()}" for item in dear)
        document = {**result.as_dict(), "costly_defaults": [item.as_dict() for item in dear]}
        return document, text, not result.invalid

    return _preflight(args, report)


def costly_defaults(args: argparse.Namespace) -> list[costly.CostlyDefault]:
    """Rows left to a model's dear defaults (see :mod:`i2v.inputs.costly`), as the command's options give them."""
    return costly.scan(
        args.input,
        model=args.model,
        models=split_models(args.models),
        route=args.api_path,
        defaults=row_defaults(args),
        format=args.format,
        opener=opener(args.input),
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
            opener=opener(args.input),
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
