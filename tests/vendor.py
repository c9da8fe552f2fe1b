"""Where the vendor's reference files live: a ``shared/`` folder beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

# Checkouts live beside the team's shared folder (``<work>/main`` and ``<work>/shared``);
# CI clones may sit deeper, so every ancestor is tried, then the usual location.
_USUAL = Path("/work/shared")


def shared_dir() -> Path:
    """The folder with ``aimlapi/`` and ``seed/``; a missing folder fails loudly, never skips."""
    explicit = os.environ.get("I2V_SHARED_DIR")
    here = Path(__file__).resolve()
    candidates = [Path(explicit)] if explicit else [*(parent / "shared" for parent in here.parents), _USUAL]
    for path in candidates:
        if (path / "aimlapi").is_dir() and (path / "seed").is_dir():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise AssertionError(f"vendor reference files (aimlapi/, seed/) not found; tried {tried}; set I2V_SHARED_DIR")
