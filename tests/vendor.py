"""Where the vendor's reference files live (outside the repository, next to it)."""

from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path:
    """The folder with ``aimlapi/`` and ``seed/``; a missing folder fails loudly, never skips."""
    path = Path(os.environ.get("I2V_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared")
    if not (path / "aimlapi").is_dir():
        raise AssertionError(f"vendor reference files not found at {path} (set I2V_SHARED_DIR)")
    return path
