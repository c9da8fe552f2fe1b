"""Aligned text columns, for the tables ``i2v validate`` and ``i2v estimate`` print."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, right: Collection[int]) -> list[str]:
    """Aligned columns, those in ``right`` right-aligned; the last is not padded, so long messages run on."""
    cells = [[str(cell) for cell in row] for row in [tuple(headers), *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    out = []
    for row in cells:
        parts = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(parts).rstrip())
    return out
