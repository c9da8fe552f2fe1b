"""The pull step of every deployment: run the flow from this machine's copy of the project.

A worker started any way (``deployments/worker.sh``, or ``prefect worker start --pool
i2v`` as Prefect suggests) runs each flow run in a process of the project's own Python
environment, where this module is importable. The step makes the project's folder the
flow run's working directory, so relative inputs (``inputs/today.csv``) and the flows'
entrypoints resolve against it: ``$I2V_HOME`` when set, else the folder this code was
installed from (a clone with ``make .venv/.synced``). Anything else fails the flow run
with one line saying what to set.
"""

from __future__ import annotations

import os
from pathlib import Path

from i2v.errors import ConfigError

#: Names the project's folder on a worker; optional when the worker runs from a clone.
HOME_ENV = "I2V_HOME"
#: A file that marks the project's folder.
_MARKER = "prefect.yaml"


def find_code_folder(env: dict[str, str] | None = None) -> Path:
    """The folder holding the project on this machine; raises :class:`ConfigError` naming what to set."""
    env = dict(os.environ) if env is None else env
    given = env.get(HOME_ENV, "").strip()
    if given:
        folder = Path(given).expanduser()
        if not (folder / _MARKER).is_file():
            raise ConfigError(f"{HOME_ENV}={given} is not a copy of i2v-pipeline (no {_MARKER} there)")
        return folder.resolve()
    installed = Path(__file__).resolve().parents[1]
    if (installed / _MARKER).is_file():
        return installed
    raise ConfigError(
        f"this worker's i2v-pipeline is not a clone ({installed}): set {HOME_ENV} to the project's folder"
    )


def code_folder() -> dict[str, str]:
    """Prefect pull step: change to the project's folder; returns it (as ``directory``)."""
    folder = find_code_folder()
    os.chdir(folder)
    return {"directory": str(folder)}
