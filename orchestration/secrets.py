"""The API key from the environment or, for workers that do not carry it, a Prefect Secret block.

A worker's flow runs read ``AIMLAPI_API_KEY`` from their environment. When it is not
set there, the key is read from the Secret block named by ``I2V_API_KEY_BLOCK``
(default ``aimlapi-api-key``) on the Prefect server the run belongs to, so one key
stored on the server serves every worker. Either way the key stays out of flow
parameters, job variables, logs and artifacts: it goes straight into the run's
:class:`~i2v.api.settings.ApiSettings`, whose ``repr`` masks it.

Store the key in the block (it reads the key from the environment, never from the
command line, which other users of the machine can see)::

    AIMLAPI_API_KEY=... .venv/bin/python -m orchestration.secrets
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import cast

from prefect.blocks.system import Secret
from pydantic import SecretStr

KEY_ENV = "AIMLAPI_API_KEY"
BLOCK_ENV = "I2V_API_KEY_BLOCK"
DEFAULT_BLOCK = "aimlapi-api-key"


def block_name() -> str:
    """The Secret block's name: ``$I2V_API_KEY_BLOCK`` or ``aimlapi-api-key``."""
    return os.environ.get(BLOCK_ENV, "").strip() or DEFAULT_BLOCK


def api_environment() -> Mapping[str, str]:
    """The environment, with the key from the Secret block when the environment has none."""
    if os.environ.get(KEY_ENV, "").strip():
        return os.environ
    try:
        block = cast("Secret[str]", Secret.load(block_name(), _sync=True))  # type: ignore[call-arg]
    except ValueError:  # no such block: ApiSettings says the key is missing
        return os.environ
    value = block.get()
    return {**os.environ, KEY_ENV: str(value)} if value else os.environ


def main() -> int:
    """Save ``$AIMLAPI_API_KEY`` into the Secret block on the server ``PREFECT_API_URL`` names."""
    key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        print(f"{KEY_ENV} is not set: export the key first (it is read from the environment only)", file=sys.stderr)
        return 2
    name = block_name()
    block: Secret[str] = Secret(value=SecretStr(key))
    block.save(name, overwrite=True, _sync=True)  # type: ignore[call-arg]
    print(f"saved the API key in the Secret block {name!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
