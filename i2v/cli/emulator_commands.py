"""``i2v demo`` and ``i2v emulator``: the project's emulator of the AI/ML API, on its own or under a run.

``demo`` starts the emulator on loopback and runs the sample CSV (or a given input) against
it with a key of its own; ``emulator`` serves it until stopped (see :mod:`i2v.emulator.cli`).
"""

from __future__ import annotations

import argparse
import os
import sys

from i2v.cli.flow_run import run_flow
from i2v.cli.progress_view import choose_view
from i2v.demo import SAMPLE_CSV
from i2v.inputs.comparison import split_models

DEMO_KEY = "demo-key-not-secret"


def demo(args: argparse.Namespace) -> int:
    """``i2v demo``: a whole run against the emulator; 0 once it reported, failed rows included."""
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
        run_flow("generate_videos", params, view=choose_view(quiet=False, stream=sys.stderr))
    # The sample's failed rows are there on purpose: the demo succeeded if it reported them.
    return 0


def emulator(args: argparse.Namespace) -> int:
    """``i2v emulator``: serve the emulator until stopped."""
    from i2v.emulator import cli as emulator_cli

    return emulator_cli.run(args)
