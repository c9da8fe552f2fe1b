"""Which models a row runs on: the run's ``--models``, or the row's own ``models`` cell.

A comparison runs a row on two or more models: one piece of work per (row, model). The
run names them for every row (``--models a,b,c``), or a row names its own in a ``models``
cell (``a,b``), which then takes the place of the run's for that row, so rows may run on
different numbers of models. Planning and validation count a row's pairs with the same
function (:func:`row_models`), so every (row, model) has exactly one outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from i2v.api.models import ModelSpec, get_model
from i2v.errors import InputError

#: The column in which a row names the models it is compared on.
MODELS_COLUMN = "models"


def compared_models(names: Sequence[str], *, field: str = "models") -> tuple[ModelSpec, ...]:
    """The models a comparison runs every row on, each once; () when there is no comparison.

    One name is no comparison: the run is that model's, with the keys and names of any run of it.
    """
    found: dict[str, ModelSpec] = {}
    for name in names:
        if not name.strip():
            continue
        try:
            spec = get_model(name)
        except KeyError as exc:
            raise InputError(str(exc.args[0]), field=field) from None
        found.setdefault(spec.name, spec)
    return tuple(found.values()) if len(found) > 1 else ()


def split_models(text: str | None) -> tuple[str, ...]:
    """``a,b,c`` (as ``--models`` and the ``models`` column take it) as model names."""
    return tuple(name.strip() for name in (text or "").split(",") if name.strip())


def row_models(cells: Mapping[str, str], run_models: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...] | None:
    """The models a row is compared on: its ``models`` cell's, else the run's; () for none.

    None when the cell names one model: the row runs on it as if its ``model`` cell named it.
    Raises :class:`InputError` (field ``models``) for a name the catalogue lacks.
    """
    names = split_models(cells.get(MODELS_COLUMN))
    if not names:
        return run_models
    compared = compared_models(names)
    return compared if compared else None


def cell_models(cells: Mapping[str, str]) -> tuple[str, ...] | None:
    """What a row's ``models`` cell names, as the plan keeps it: None when blank, () when a name is unknown.

    A row makes one outcome per name, and one when the cell names none it can use
    (:func:`row_models` then fails the row).
    """
    if not split_models(cells.get(MODELS_COLUMN)):
        return None
    try:
        compared = row_models(cells, ())
    except InputError:
        return ()
    if compared is None:
        return (get_model(split_models(cells[MODELS_COLUMN])[0]).name,)
    return tuple(spec.name for spec in compared)


def counted(input_rows: int, pairs: int, models: int) -> str:
    """``10 rows``, ``10 rows × 3 models``, or ``10 rows, 24 (row, model) pairs`` when rows differ in models."""
    noun = "row" if input_rows == 1 else "rows"
    if pairs == input_rows:
        return f"{input_rows:,} {noun}"
    if models > 1 and pairs == input_rows * models:
        return f"{input_rows:,} {noun} × {models} models"
    return f"{input_rows:,} {noun}, {pairs:,} (row, model) pairs"
