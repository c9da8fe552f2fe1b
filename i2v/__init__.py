"""i2v-pipeline: bulk image-to-video generation on AI/ML API.

What a Python user may import from here; every other module is reachable but not a
promise::

    from i2v import generate_videos, open_destination, read_outcomes

    generate_videos(input="my.csv", dest="out/run1")       # the Prefect flow
    for outcome in read_outcomes(open_destination("out/run1")):  # the merged manifest
        print(outcome.row_index, outcome.status, outcome.video_uri)

- :func:`generate_videos` runs an input (CSV, JSON Lines or Parquet) into a destination;
  the API key comes from ``AIMLAPI_API_KEY``.
- :func:`read_rows` validates an input without sending anything.
- :func:`open_destination` opens a folder or an ``s3://bucket/prefix``;
  :func:`read_outcomes` reads a manifest from it as :class:`RowOutcome` rows.

The stages, each a subpackage with its own docstring: ``api`` (the vendor), ``inputs``,
``engine``, ``storage``, ``media``, ``manifest``, ``report``, ``cli`` and ``emulator``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flows.generate import generate_videos
    from i2v.errors import I2VError
    from i2v.inputs.validation import read_rows
    from i2v.manifest.run_table import read_outcomes
    from i2v.outcomes import RowOutcome
    from i2v.storage.from_uri import open_destination

__all__ = ["I2VError", "RowOutcome", "generate_videos", "open_destination", "read_outcomes", "read_rows"]

# Loaded on first use: `import i2v` stays light, and the core imports Prefect only when
# a flow is asked for.
_HOMES = {
    "I2VError": "i2v.errors",
    "RowOutcome": "i2v.outcomes",
    "generate_videos": "flows.generate",
    "open_destination": "i2v.storage.from_uri",
    "read_outcomes": "i2v.manifest.run_table",
    "read_rows": "i2v.inputs.validation",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
