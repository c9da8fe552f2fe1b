"""The ``i2v`` command's arguments: subcommands, their options and what the options mean for a run."""

from __future__ import annotations

import argparse
import textwrap
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from i2v.api import prices
from i2v.api.models import DEFAULT_MODEL, get_model
from i2v.emulator.cli import add_arguments as add_emulator_arguments
from i2v.engine.spec import DEFAULT_MAX_IN_FLIGHT, DEFAULT_ROWS_PER_SHARD
from i2v.inputs import image_checks
from i2v.inputs.sources import FORMATS
from i2v.limits import MIB, Limits


def build_parser() -> argparse.ArgumentParser:
    """The ``i2v`` command's parser; each subcommand names its handler in ``args.handler``."""
    parser = argparse.ArgumentParser(prog="i2v", description="Bulk image-to-video generation on AI/ML API.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    # Not required: a bare `i2v` prints this help (see main).
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="generate one video per CSV row",
        description=_RUN_HELP,
        epilog=default_note(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("input", help="CSV, JSON Lines or Parquet file (local path or s3://bucket/key)")
    run.add_argument("--dest", required=True, help="output folder or s3://bucket/prefix")
    _add_run_options(run)
    _add_format_option(run)
    _add_limit_options(run)
    _add_quiet_option(run)
    _add_json_option(run, "the run's summary (progress on stderr)")
    _add_rows_again_options(run, again="failures of earlier runs")
    run.set_defaults(handler="run")
    run.set_defaults(handler="run")

    rerun = commands.add_parser("rerun", help="run again chosen rows of a manifest", description=_RERUN_HELP)
    rerun.add_argument(
        "manifest",
        help="a destination's manifest (.parquet or .csv), or a run's runs/<run>/manifest.parquet (local or s3://)",
    )
    _add_rows_again_options(rerun, again="failed rows of the manifest")
    rerun.add_argument(
        "--kind", action="append", default=[], metavar="KIND", help="only rows of this error_kind (repeatable)"
    )
    rerun.add_argument(
        "--dry-run", action="store_true", help="list the rows it would run and those it leaves; send nothing"
    )
    rerun.add_argument("--max-in-flight", type=int, default=DEFAULT_MAX_IN_FLIGHT, help="(default: %(default)s)")
    rerun.add_argument("--poll-interval", type=float, default=10.0, help="(default: %(default)s)")
    rerun.add_argument("--job-timeout", type=float, default=900.0, help="(default: %(default)s)")
    _add_policy_options(rerun)
    _add_quiet_option(rerun)
    _add_json_option(rerun, "what it will run and the run's summary (or, with --dry-run, the plan)")
    rerun.set_defaults(handler="rerun")

    status = commands.add_parser("status", help="what a destination holds and what a rerun would do")
    status.add_argument("dest", help="output folder or s3://bucket/prefix")
    _add_json_option(status, "the same as one JSON document")
    status.set_defaults(handler="status")

    demo = commands.add_parser("demo", help="run the pipeline end to end against the bundled emulator")
    demo.add_argument("input", nargs="?", help="input file (default: the sample in the package)")
    # The input used to be given as --csv; that spelling still works for a release.
    demo.add_argument("--csv", dest="csv", help=argparse.SUPPRESS)
    demo.add_argument("--dest", default="out/demo", help="output folder or s3://bucket/prefix (default: out/demo)")
    demo.add_argument("--generation-seconds", type=float, default=3.0, help="emulated generation time per job")
    demo.add_argument("--models", metavar="A,B,...", help="compare models: run every row on each of these")
    demo.set_defaults(handler="demo")

    models = commands.add_parser(
        "models", help="list every catalogued image-to-video model: fields, defaults, price (or why unsupported)"
    )
    models.add_argument("name", nargs="?", help="show one model (its id or an alias)")
    models.add_argument("--json", action="store_true", help="print JSON for scripts")
    models.set_defaults(handler="models")

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
        default=image_checks.DEFAULT_CONCURRENCY,
        help="image URLs asked at once (default: %(default)s)",
    )
    validate.add_argument(
        "--timeout",
        type=float,
        default=image_checks.DEFAULT_TIMEOUT_S,
        help="seconds an image URL may take to answer (default: %(default)s)",
    )
    _add_limit_options(validate)
    validate.set_defaults(handler="validate")

    estimate = commands.add_parser(
        "estimate",
        help="jobs and expected cost of a run",
        description=_ESTIMATE_HELP,
        epilog=default_note(),
    )
    estimate.add_argument("input", help="CSV, JSON Lines or Parquet file (local path or s3://bucket/key)")
    _add_row_options(estimate)
    _add_format_option(estimate)
    estimate.add_argument("--json", action="store_true", help="print a JSON document instead of a table")
    estimate.add_argument(
        "--no-network",
        action="store_true",
        help="price from the shipped table only, without asking the API's live catalogue",
    )
    _add_limit_options(estimate)
    estimate.set_defaults(handler="estimate")

    emulator = commands.add_parser("emulator", help="serve the AI/ML API emulator")
    add_emulator_arguments(emulator)
    emulator.set_defaults(handler="emulator")
    # `--debug` after the subcommand too; given before it, it stays set.
    for sub in commands.choices.values():
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _version() -> str:
    """The installed distribution's version (its metadata), as pip and uv report it."""
    try:
        return metadata.version("i2v-pipeline")
    except metadata.PackageNotFoundError:  # imported from a source tree nobody installed
        return "(not installed)"


_RUN_HELP = """Generate one video per CSV row. The API key and base URL come from AIMLAPI_API_KEY and
AIMLAPI_BASE_URL; S3 credentials and endpoint from the usual AWS_* settings."""


def default_note() -> str:
    """What a row with no model, resolution or duration asks for, and what that costs."""
    spec = get_model(DEFAULT_MODEL)
    params = spec.route().params
    chosen = {name: params[name].default for name in ("resolution", "duration") if name in params}
    price = prices.estimate(DEFAULT_MODEL, chosen)
    shown = ", ".join(f"{name} {value}" for name, value in chosen.items() if value is not None)
    return textwrap.fill(
        f"Rows that name no model, resolution or duration get {DEFAULT_MODEL}'s defaults: {shown}"
        f" (about {prices.credits(price.credits)} credits, ${price.usd:.2f}, a video; `i2v estimate` prices"
        " an input). Give --resolution and --duration (or the columns) to choose cheaper ones.",
        width=88,
    )


def _add_row_options(parser: argparse.ArgumentParser) -> None:
    """What rows ask for when their cells are blank: the run's defaults."""
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"default model for rows without one (default: {DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--models",
        metavar="A,B,...",
        help="compare models: run every row on each of these (one video and one manifest row per row and model)",
    )
    parser.add_argument("--api-path", choices=("universal", "legacy"), help="force an endpoint (default: the model's)")
    parser.add_argument("--resolution", help="default resolution for rows without one")
    parser.add_argument("--duration", type=int, help="default duration in seconds")
    parser.add_argument("--aspect-ratio", help="default aspect ratio (16:9, 9:16, 1:1)")
    parser.add_argument("--negative-prompt", help="default negative prompt")
    parser.add_argument("--seed", type=int, help="default seed")
    parser.add_argument("--image-col", metavar="NAME", help="the input's column holding the image (default: image_url)")
    parser.add_argument("--prompt-col", metavar="NAME", help="the input's column holding the prompt (default: prompt)")


def columns_given(args: argparse.Namespace) -> dict[str, str]:
    """The input's own column names for ours, from ``--image-col`` and ``--prompt-col``."""
    given = {args.image_col: "image_url", args.prompt_col: "prompt"}
    return {theirs: ours for theirs, ours in given.items() if theirs and theirs != ours}


def _add_format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=FORMATS, help="input format (default: from the extension; CSV when it says nothing)"
    )


def row_defaults(args: argparse.Namespace) -> dict[str, Any]:
    """The row options given: what rows ask for when their cells are blank."""
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
    """The bounds on what a run reads and downloads (README "Limits"; i2v/limits.py)."""
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


def _add_json_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as one JSON document on stdout")


def _add_rows_again_options(parser: argparse.ArgumentParser, *, again: str) -> None:
    """``--include-failed`` and ``--include-unknown``, named alike on ``run`` and ``rerun``.

    Each widens the rows tried again beyond the default (failures that may pass). The
    older spellings (``run --retry-failed all``, ``run --resubmit-unknown``, ``rerun
    --failed``, ``rerun --retryable``) stay as hidden aliases for a release.
    """
    parser.add_argument(
        "--include-failed",
        dest="select",
        action="store_const",
        const="failed",
        help=f"also {again} that failed for good (rejected, moderation); default: only those that may pass",
    )
    parser.add_argument(
        "--include-unknown",
        action="store_true",
        help="also rows whose create was sent but never answered (submit_unknown); each may then be paid twice",
    )
    if parser.prog.endswith(" run"):
        parser.add_argument(
            "--retry-failed",
            dest="select",
            choices=("retryable", "all"),  # "all" is read as "failed" (see selected)
            help=argparse.SUPPRESS,
        )
        parser.add_argument("--resubmit-unknown", dest="include_unknown", action="store_true", help=argparse.SUPPRESS)
    else:
        parser.add_argument("--failed", dest="select", action="store_const", const="failed", help=argparse.SUPPRESS)
        parser.add_argument(
            "--retryable", dest="select", action="store_const", const="retryable", help=argparse.SUPPRESS
        )
    parser.set_defaults(select="retryable")


def selected(args: argparse.Namespace) -> Literal["retryable", "failed"]:
    """Which failures are tried again: ``retryable`` or ``failed`` (every one), whichever spelling gave it."""
    return "failed" if args.select in ("failed", "all") else "retryable"


def _add_quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar or lines and no log lines below warnings; only the end summary and errors",
    )


def limits_given(args: argparse.Namespace) -> dict[str, Any]:
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
    parser.add_argument(
        "--unknown-grace",
        type=float,
        default=900.0,
        metavar="S",
        help="a create whose answer was lost and that the provider's usage logs still do not list this long"
        " after it was sent never arrived, and is sent again (default: %(default)g s)",
    )


_RERUN_HELP = """Run again chosen rows of a manifest into the same destination: by default the rows whose
failure may pass another time. Needs only the manifest: each row carries its inputs."""


_VALIDATE_HELP = """Check an input before a run: every row against the model registry, rows asking for the
same work as an earlier row, ids reused for other work, image URLs (a HEAD each), local and inline
images. Exits 0 when every row is fine, 1 when any row has a problem, 2 when the file itself
cannot be used."""
_ESTIMATE_HELP = """Jobs and expected cost of running an input, by model, resolution and duration. Prices come
from the API's live catalogue (GET /v1/models?include=pricing at AIMLAPI_BASE_URL; no key needed) when it answers,
else from the dated table in i2v/api/catalogue/prices.json; the output says which. Models neither prices show
"price unknown" and stay out of the totals. Rows asking for the same work count once; invalid rows are listed,
not counted (exit 1). Exits 2 when the file itself cannot be used."""
