"""What ``i2v run`` checks before Prefect starts: mistakes read as one line and cost no time.

Each check raises :class:`~i2v.errors.ConfigError` with the one line the user sees (exit
2): a destination that cannot be written (a file where a folder should be, a bucket
without credentials, a bucket that is not there), settings out of range.
"""

from __future__ import annotations

from typing import Any

from i2v.engine.spec import RunSettings
from i2v.errors import ConfigError
from i2v.inputs.sources import is_s3
from i2v.storage.from_uri import open_destination
from i2v.storage.s3_client import endpoint_from_env, make_client


def destination_writable(uri: str) -> None:
    """The destination can be written: a folder that is (or can be made), or a bucket reachable with credentials."""
    dest = open_destination(uri, s3_client=make_client(endpoint_from_env()) if is_s3(uri) else None)
    dest.check()


def run_settings(values: dict[str, Any]) -> RunSettings:
    """The run's settings from the command's options; a value out of range is a usage error naming it."""
    try:
        return RunSettings(**values)
    except ConfigError as exc:
        raise ConfigError(_as_option(str(exc))) from None


def _as_option(message: str) -> str:
    """A settings message in the command's words: ``max_failure_ratio`` becomes ``--max-failure-ratio``."""
    words = {
        "max_failure_ratio": "--max-failure-ratio",
        "max_credits": "--max-credits",
        "max_in_flight": "--max-in-flight",
        "poll_interval_s": "--poll-interval",
        "job_timeout_s": "--job-timeout",
        "rows_per_shard": "--rows-per-shard",
        "rows_per_task": "--rows-per-task",
        "unknown_grace_s": "--unknown-grace",
        "models": "--models",
    }
    for name, option in words.items():
        if message.startswith(name):
            return option + message[len(name) :]
    return message
