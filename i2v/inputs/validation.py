"""CSV → validated rows with stable keys.

A CSV needs ``image_url`` and ``prompt`` columns. ``image_url`` holds an https URL, a
``data:image/...;base64,`` URI, or a path to a local image (relative paths are taken
from the CSV's folder). Optional columns: ``id`` (names the outputs), ``model``, and any
request parameter of the row's model (``resolution``, ``duration``, ``aspect_ratio``,
``negative_prompt``, ``seed``, ``enhance_prompt``, ...). A blank cell means "use the
run's default", and failing that the model's.

A comparison (``--models``, or a row's own ``models`` cell: two or more model names, see
:mod:`i2v.inputs.comparison`) runs the row on each model: it becomes one row per (row,
model), each with the key of its own work, the input's ``row_index``, and, when the row
has an ``id``, the id ``<id>--<model tag>`` so that each pair's outputs have names of
their own (a rerun of the manifest finds them again). A setting a compared model has no
field for is not sent to it; a value outside a field's choices fails that pair only; a
row that also names a ``model`` fails (the comparison names them).

Every row comes out either valid (:class:`~i2v.inputs.row.Row`) or invalid
(:class:`~i2v.inputs.row.InvalidRow`, with the field and the reason); one bad row never
stops the others. This module reads the rows of an input or a shard and checks each
row's model, route, prompt and id; its image cells are checked by
:mod:`i2v.inputs.image_cells` and its parameters by :mod:`i2v.inputs.param_values`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from i2v.api.models import DEFAULT_MODEL, ModelSpec, RouteName, get_model
from i2v.errors import InputError
from i2v.inputs import comparison, csv_reader, shards
from i2v.inputs.comparison import MODELS_COLUMN, compared_models, split_models
from i2v.inputs.image_cells import ImageCells
from i2v.inputs.param_values import KNOWN_PARAMS, RESERVED_COLUMNS, canonical_name, request_params
from i2v.inputs.row import CellProblem, InvalidRow, Row, row_key, shorten_image_ref
from i2v.inputs.safe_names import output_name
from i2v.inputs.sources import Opener, is_s3, open_local
from i2v.limits import MAX_ID_CHARS, Limits

_NO_LIMIT = 1 << 62


@dataclass
class RowSet:
    """The validated rows of one input, or of one shard of it."""

    rows: list[Row] = field(default_factory=list)
    invalid: list[InvalidRow] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    total: int = 0
    #: Records of the input read (``total`` counts one outcome per (row, model) in a comparison).
    input_rows: int = 0
    #: The models rows were compared on (``--models``, then those of rows' ``models`` cells).
    compared: list[str] = field(default_factory=list)
    #: Why the rows could not be read at all (the input changed after it was planned):
    #: each of the ``total`` rows fails with it.
    unread: str | None = None


def read_rows(
    path: str | Path,
    *,
    model: str = DEFAULT_MODEL,
    route: RouteName | None = None,
    defaults: Mapping[str, Any] | None = None,
    limits: Limits | None = None,
    format: str | None = None,
    opener: Opener = open_local,
    columns: Mapping[str, str] | None = None,
    models: Sequence[str] = (),
) -> RowSet:
    """Read and validate a whole input. Raises :class:`InputError` only when the file itself is unusable."""
    run_model(model)
    compared_models(models)
    whole = shards.plan(path, rows_per_shard=_NO_LIMIT, limits=limits, format=format, opener=opener, columns=columns)
    rows = RowSet(ignored_columns=ignored_columns(whole.header))
    for shard in whole.shards:
        part = read_shard(
            whole, shard, model=model, route=route, defaults=defaults, limits=limits, opener=opener, models=models
        )
        rows.rows += part.rows
        rows.invalid += part.invalid
        rows.total += part.total
        rows.input_rows += part.input_rows
        rows.compared += [name for name in part.compared if name not in rows.compared]
    return rows


def read_shard(
    input_plan: shards.InputPlan,
    shard: shards.Shard,
    *,
    model: str = DEFAULT_MODEL,
    route: RouteName | None = None,
    defaults: Mapping[str, Any] | None = None,
    limits: Limits | None = None,
    opener: Opener = open_local,
    models: Sequence[str] = (),
) -> RowSet:
    """Validate the rows of one shard of a planned input; a comparison makes one row per (row, model)."""
    default_model = run_model(model)
    compared = compared_models(models)
    run_defaults = {canonical_name(k): v for k, v in (defaults or {}).items() if v is not None and v != ""}
    # Relative image paths are taken from a local input's folder; an S3 input has none.
    base_dir = None if is_s3(input_plan.path) else Path(input_plan.path).parent
    validator = _RowValidator(
        base_dir=base_dir, model=default_model, route=route, defaults=run_defaults, limits=limits or Limits()
    )
    result = RowSet(ignored_columns=ignored_columns(input_plan.header))
    for record in shards.read_records(input_plan, shard, opener=opener):
        result.input_rows += 1
        try:
            row_compared: tuple[ModelSpec, ...] | None = comparison.row_models(record.cells, compared)
        except InputError as exc:
            # Planning counted this row once: it fails once, naming the model the catalogue lacks.
            result.total += 1
            result.invalid.append(
                InvalidRow(record.shown_index, record.line, "models", exc.reason, _shown_cells(record.cells), None)
            )
            continue
        single = None
        if row_compared is None:  # the cell names one model: the row runs on it alone
            single, row_compared = get_model(split_models(record.cells[MODELS_COLUMN])[0]), ()
        own = bool(split_models(record.cells.get(MODELS_COLUMN)))
        result.compared += [spec.name for spec in row_compared if spec.name not in result.compared]
        for spec in row_compared or (None,):
            result.total += 1
            try:
                if record.problem:
                    raise CellProblem(*record.problem)
                if record.extra:
                    raise CellProblem(None, f"has {record.extra} more cell(s) than the header")
                conflict = shard.id_conflicts.get(record.index)
                if conflict:
                    raise CellProblem("id", conflict)
                name = shard.names.get(record.index)
                row = validator.validate(
                    record.shown_index, record.line, record.cells, name=name, compared=spec, single=single, own=own
                )
            except CellProblem as problem:
                # A pair's reason names its model (most of the model's own checks already do).
                reason = problem.reason
                if spec is not None and spec.name not in reason:
                    reason = f"{reason} (for {spec.name})"
                cells = _shown_cells(record.cells)
                bad = InvalidRow(
                    record.shown_index, record.line, problem.field, reason, cells, None if spec is None else spec.name
                )
                result.invalid.append(bad)
                continue
            result.rows.append(row)
    return result


def model_tag(model: str) -> str:
    """What tells a compared model's outputs apart in their id: its name, safe in a file name."""
    return model.replace("/", "_")


def check_input(
    path: str | Path,
    *,
    model: str = DEFAULT_MODEL,
    format: str | None = None,
    opener: Opener = open_local,
    columns: Mapping[str, str] | None = None,
    models: Sequence[str] = (),
) -> None:
    """Fail fast, with one :class:`InputError`, on a file that cannot be read as rows at all."""
    csv_reader.read_header(path, format=format, opener=opener, columns=columns)
    run_model(model)
    compared_models(models)


def ignored_columns(header: tuple[str, ...]) -> list[str]:
    """Columns that are no model's parameter (ignored, with a warning)."""
    return [name for name in header if name not in RESERVED_COLUMNS and canonical_name(name) not in KNOWN_PARAMS]


class _RowValidator:
    """Checks each row of one shard against the run's model, route, defaults and limits."""

    def __init__(
        self,
        *,
        base_dir: Path | None,
        model: ModelSpec,
        route: RouteName | None,
        defaults: Mapping[str, Any],
        limits: Limits,
    ) -> None:
        self.model = model
        self.route = route
        self.defaults = defaults
        self.limits = limits
        self.images = ImageCells(base_dir=base_dir, limits=limits)

    def validate(
        self,
        index: int,
        line: int,
        cells: Mapping[str, str],
        *,
        name: str | None = None,
        compared: ModelSpec | None = None,
        single: ModelSpec | None = None,
        own: bool = False,
    ) -> Row:
        if (compared or single) is not None and cells.get("model", "").strip():
            # The row would name one model and the run (or its models cell) others: which the user
            # meant is not ours to guess.
            where = "its models cell" if own else "the run (--models)"
            raise CellProblem("model", f"names one model, but {where} names the models to run: leave it blank")
        spec = compared or single or self._model(cells.get("model", ""))
        if spec.unsupported:
            raise CellProblem("model", f"{spec.name} cannot be run by this pipeline: it {spec.unsupported}")
        wanted = cells.get("api_path", "").strip().lower() or self.route
        if wanted not in (None, "universal", "legacy"):
            raise CellProblem("api_path", f"must be universal or legacy, got {wanted!r}")
        try:
            route = spec.route(wanted)  # type: ignore[arg-type]
        except KeyError as exc:
            raise CellProblem("api_path" if cells.get("api_path", "").strip() else "model", str(exc.args[0])) from None
        prompt = cells.get("prompt", "").strip()
        if not prompt:
            raise CellProblem("prompt", "is empty")
        if len(prompt) < route.prompt_min or (route.prompt_max is not None and len(prompt) > route.prompt_max):
            raise CellProblem(
                "prompt",
                f"has {len(prompt):,} characters; {spec.name} accepts {route.prompt_min} to {route.prompt_max}",
            )
        if self.limits.max_prompt_chars is not None and len(prompt) > self.limits.max_prompt_chars:
            allowed = self.limits.max_prompt_chars
            raise CellProblem(
                "prompt", f"has {len(prompt):,} characters; this run allows {allowed} (--max-prompt-chars)"
            )
        image_ref, image_path, image_identity, image_key = self.images.resolve(cells.get("image_url", "").strip())
        params, images, identities = request_params(
            spec, route, cells, defaults=self.defaults, images=self.images, compared=compared is not None
        )
        key = row_key(spec.api_id, route.name, {**params, **identities}, prompt, image_identity)
        given_id = cells.get("id", "").strip()
        if len(given_id) > MAX_ID_CHARS:
            raise CellProblem("id", f"has {len(given_id):,} characters; ids name files and may have {MAX_ID_CHARS}")
        row_id = given_id or key
        if compared is not None and given_id:
            # Each pair's outputs need a name of their own; the tag keeps the user's id readable in it.
            row_id = f"{given_id}--{model_tag(spec.name)}"
            name = f"{name}--{model_tag(spec.name)}" if name else None
        return Row(
            index=index,
            line=line,
            id=row_id,
            key=key,
            model=spec.name,
            api_model=spec.api_id,
            route=route.name,
            prompt=prompt,
            image_ref=image_ref,
            params=params,
            image_path=str(image_path) if image_path else None,
            image_key=image_key,
            name=name or output_name(row_id),
            image_field=route.image_field,
            image_is_list=route.image_is_list,
            images=images,
            sends_prompt=route.takes_prompt,
        )

    def _model(self, name: str) -> ModelSpec:
        if not name.strip():
            return self.model
        try:
            return get_model(name)
        except KeyError as exc:
            raise CellProblem("model", str(exc.args[0])) from None


def run_model(name: str) -> ModelSpec:
    """The run's default model; an unknown or unsupported one is an :class:`InputError` naming the field."""
    try:
        spec = get_model(name)
    except KeyError as exc:
        raise InputError(str(exc.args[0]), field="model") from None
    if spec.unsupported:
        raise InputError(f"{spec.name} cannot be run by this pipeline: it {spec.unsupported}", field="model")
    return spec


def _shown_cells(cells: Mapping[str, str | None]) -> dict[str, str]:
    return {name: shorten_image_ref(value or "") for name, value in cells.items() if name in RESERVED_COLUMNS}
