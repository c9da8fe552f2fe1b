"""The demo's input, shipped inside the package so that an installed ``i2v demo`` has it.

``sample.csv`` has rows for every model, one prompt the emulator's content moderation
rejects and two invalid rows; its ``image_url`` cells name the PNGs under ``images/``,
relative to the CSV. ``draw_images.py`` drew them (it stays in the repository, not the
wheel). Imports nothing of the project.
"""

from __future__ import annotations

from pathlib import Path

#: The sample input ``i2v demo`` runs by default.
SAMPLE_CSV = Path(__file__).resolve().parent / "sample.csv"
