"""``i2v emulator``: serve the AI/ML API emulator from the command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from i2v.emulator.config import EmulatorConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The emulator's options, on ``parser``."""
    defaults = EmulatorConfig(api_key="-")
    parser.description = (
        "Serve a local emulator of AI/ML API's video endpoints. Point clients at "
        "http://HOST:PORT (the vendor samples' base URL is http://HOST:PORT/v2)."
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    add(
        "--port",
        type=int,
        default=8000,
        metavar="N",
        help="port, 0 for any free one (default: %(default)s)",
    )
    add("--api-key", metavar="KEY", help="key clients must send (default: $AIMLAPI_API_KEY)")
    add("--access-log", action="store_true", help="log every request")
    add(
        "--logs-delay",
        type=float,
        metavar="SECONDS",
        help="time before a request shows up in GET /v2/logs (default: %(default)s)",
    )

    add = parser.add_argument_group("jobs").add_argument
    add(
        "--generation-seconds",
        type=float,
        metavar="S",
        help="time a job spends generating (default: %(default)s)",
    )
    add(
        "--model-seconds",
        action="append",
        type=_model_seconds,
        default=[],
        metavar="MODEL=S",
        help="generation time of one model, overriding --generation-seconds for it (repeatable)",
    )
    add(
        "--generation-jitter",
        type=float,
        metavar="F",
        help="its variation, a fraction (default: %(default)s)",
    )
    add(
        "--max-concurrent",
        type=int,
        metavar="N",
        help="jobs generating at once (default: %(default)s)",
    )
    add("--max-pending", type=int, metavar="N", help="queued+generating jobs allowed before 429")
    add("--credits", type=float, metavar="C", help="account balance (default: unlimited)")
    add(
        "--url-ttl",
        type=float,
        metavar="S",
        help="seconds a video URL works, for models whose documentation states none (default: %(default)s)",
    )
    add(
        "--blocked-term",
        action="append",
        dest="blocked_terms",
        metavar="WORD",
        help="word that fails a job in moderation (repeatable; default: forbidden)",
    )

    add = parser.add_argument_group("injected failures (deterministic under --seed)").add_argument
    add("--requests-per-second", type=float, metavar="R", help="rate limit over API requests")
    add("--job-error-rate", type=float, metavar="P", help="share of jobs that end in 'error'")
    add(
        "--terminal-status-rate",
        type=float,
        metavar="P",
        help="share of jobs that end in 'failed', 'cancelled' or 'expired'",
    )
    add(
        "--status-variants",
        action="store_true",
        help="report running jobs as waiting/active/processing too, not only queued/generating",
    )
    add("--rate-limit-rate", type=float, metavar="P", help="share of requests answered 429")
    add("--server-error-rate", type=float, metavar="P", help="share answered 500/502/503")
    add("--lost-response-rate", type=float, metavar="P", help="creates billed, then answered 502")
    add(
        "--slow-response-rate",
        type=float,
        metavar="P",
        help="share of API answers and downloads held back --slow-response-seconds",
    )
    add(
        "--slow-response-seconds",
        type=float,
        metavar="S",
        help="how long a slow answer is held (default: %(default)s)",
    )
    add(
        "--connection-reset-rate",
        type=float,
        metavar="P",
        help="share of API answers and downloads cut mid-body by a connection reset",
    )
    add(
        "--truncated-download-rate",
        type=float,
        metavar="P",
        help="share of downloads closed halfway under their full Content-Length",
    )
    add(
        "--off-spec-rate",
        type=float,
        metavar="P",
        help="share of videos made other than asked: half the duration, the other orientation",
    )
    add("--seed", type=int, metavar="N", help="seed of all random draws (default: %(default)s)")

    add = parser.add_argument_group("videos").add_argument
    add(
        "--short-side",
        type=_short_side,
        metavar="PX",
        help="pixels on the short edge, or 'asked' for the asked resolution's (default: %(default)s)",
    )
    add("--fps", type=int, metavar="N", help="frames per second (default: %(default)s)")
    add(
        "--render-processes",
        type=int,
        default=2,
        metavar="N",
        help="worker processes rendering videos, 0 for threads in the server (default: %(default)s)",
    )
    add("--work-dir", type=Path, metavar="DIR", help="where videos go (default: a temp folder)")

    parser.set_defaults(
        generation_seconds=defaults.generation_seconds,
        generation_jitter=defaults.generation_jitter,
        max_concurrent=defaults.max_concurrent,
        url_ttl=defaults.url_ttl_seconds,
        job_error_rate=defaults.job_error_rate,
        terminal_status_rate=defaults.terminal_status_rate,
        rate_limit_rate=defaults.rate_limit_rate,
        server_error_rate=defaults.server_error_rate,
        lost_response_rate=defaults.lost_response_rate,
        slow_response_rate=defaults.slow_response_rate,
        slow_response_seconds=defaults.slow_response_seconds,
        connection_reset_rate=defaults.connection_reset_rate,
        truncated_download_rate=defaults.truncated_download_rate,
        off_spec_rate=defaults.off_spec_rate,
        seed=defaults.seed,
        short_side=defaults.short_side,
        fps=defaults.fps,
        logs_delay=defaults.logs_delay_seconds,
    )


def _short_side(text: str) -> int | None:
    """``--short-side``: a number of pixels, or ``asked`` (None: the asked resolution's)."""
    if text.strip().lower() == "asked":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels or 'asked', got {text!r}") from None


def _model_seconds(text: str) -> tuple[str, float]:
    """``--model-seconds``: ``MODEL=SECONDS``."""
    model, sep, seconds = text.rpartition("=")
    try:
        if not sep or not model.strip():
            raise ValueError
        return model.strip(), float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MODEL=SECONDS, got {text!r}") from None


def config_from_args(args: argparse.Namespace, api_key: str) -> EmulatorConfig:
    """The configuration the parsed options ask for; ``ValueError`` if they make no sense."""
    return EmulatorConfig(
        api_key=api_key,
        generation_seconds=args.generation_seconds,
        generation_jitter=args.generation_jitter,
        model_generation_seconds=tuple(args.model_seconds),
        max_concurrent=args.max_concurrent,
        max_pending=args.max_pending,
        requests_per_second=args.requests_per_second,
        job_error_rate=args.job_error_rate,
        terminal_status_rate=args.terminal_status_rate,
        status_variants=args.status_variants,
        rate_limit_rate=args.rate_limit_rate,
        server_error_rate=args.server_error_rate,
        lost_response_rate=args.lost_response_rate,
        slow_response_rate=args.slow_response_rate,
        slow_response_seconds=args.slow_response_seconds,
        connection_reset_rate=args.connection_reset_rate,
        truncated_download_rate=args.truncated_download_rate,
        off_spec_rate=args.off_spec_rate,
        blocked_terms=tuple(args.blocked_terms) if args.blocked_terms else ("forbidden",),
        credits=args.credits,
        url_ttl_seconds=args.url_ttl,
        short_side=args.short_side,
        fps=args.fps,
        render_processes=args.render_processes,
        seed=args.seed,
        logs_delay_seconds=args.logs_delay,
        work_dir=args.work_dir,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns the exit status."""
    from i2v.emulator.server import serve

    key = (args.api_key or os.environ.get("AIMLAPI_API_KEY", "")).strip()
    if not key:
        print("i2v emulator: no API key: pass --api-key or set AIMLAPI_API_KEY", file=sys.stderr)
        return 2
    try:
        config = config_from_args(args, key)
    except ValueError as exc:
        print(f"i2v emulator: {exc}", file=sys.stderr)
        return 2

    def announce(base_url: str) -> None:
        print(
            f"i2v emulator: serving on {base_url} (vendor samples: base_url = {base_url}/v2)",
            flush=True,
        )

    try:
        serve(config, args.host, args.port, access_log=args.access_log, on_ready=announce)
    except KeyboardInterrupt:
        # Ctrl-C is how a foreground server is meant to stop.
        return 0
    return 0
