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
stops the others.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from i2v.api.models import (
    DEFAULT_MODEL,
    EXPANSION_ALIASES,
    IMAGE_KINDS,
    MODELS,
    UNOFFERED_KINDS,
    ModelSpec,
    Param,
    Route,
    RouteName,
    get_model,
)
from i2v.errors import InputError
from i2v.inputs import comparison, csv_reader, shards
from i2v.inputs.comparison import MODELS_COLUMN, compared_models, split_models
from i2v.inputs.csv_reader import REQUIRED_COLUMNS, ROW_INDEX_COLUMN
from i2v.inputs.row import (
    DATA_URI,
    InvalidRow,
    Row,
    row_key,
    shorten_image_ref,
    sniff_image_type,
)
from i2v.inputs.safe_names import output_name
from i2v.inputs.sources import Opener, is_s3, open_local
from i2v.limits import MAX_ID_CHARS, Limits, megabytes

RESERVED_COLUMNS = ("id", "model", MODELS_COLUMN, "api_path", *REQUIRED_COLUMNS, ROW_INDEX_COLUMN)
#: Where a copy of each local or inline image is kept in the destination, by content.
INPUTS_PREFIX = "inputs/"
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}
_NO_LIMIT = 1 << 62

_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}
_KNOWN_PARAMS = frozenset(
    name for spec in MODELS.values() for route in spec.routes.values() for name in route.params
) | frozenset(EXPANSION_ALIASES)


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
    run_defaults = {_canonical_name(k): v for k, v in (defaults or {}).items() if v is not None and v != ""}
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
                    raise _Problem(*record.problem)
                if record.extra:
                    raise _Problem(None, f"has {record.extra} more cell(s) than the header")
                conflict = shard.id_conflicts.get(record.index)
                if conflict:
                    raise _Problem("id", conflict)
                name = shard.names.get(record.index)
                row = validator.validate(
                    record.shown_index, record.line, record.cells, name=name, compared=spec, single=single, own=own
                )
            except _Problem as problem:
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
    return [name for name in header if name not in RESERVED_COLUMNS and _canonical_name(name) not in _KNOWN_PARAMS]


class _Problem(Exception):
    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


class _RowValidator:
    def __init__(
        self,
        *,
        base_dir: Path | None,
        model: ModelSpec,
        route: RouteName | None,
        defaults: Mapping[str, Any],
        limits: Limits,
    ) -> None:
        self.base_dir = base_dir
        self.model = model
        self.route = route
        self.defaults = defaults
        self.limits = limits
        root = limits.image_root or base_dir
        self.image_root = Path(root).resolve() if root else None
        self.image_digests: dict[Path, tuple[str, str]] = {}

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
            raise _Problem("model", f"names one model, but {where} names the models to run: leave it blank")
        spec = compared or single or self._model(cells.get("model", ""))
        if spec.unsupported:
            raise _Problem("model", f"{spec.name} cannot be run by this pipeline: it {spec.unsupported}")
        wanted = cells.get("api_path", "").strip().lower() or self.route
        if wanted not in (None, "universal", "legacy"):
            raise _Problem("api_path", f"must be universal or legacy, got {wanted!r}")
        try:
            route = spec.route(wanted)  # type: ignore[arg-type]
        except KeyError as exc:
            raise _Problem("api_path" if cells.get("api_path", "").strip() else "model", str(exc.args[0])) from None
        prompt = cells.get("prompt", "").strip()
        if not prompt:
            raise _Problem("prompt", "is empty")
        if len(prompt) < route.prompt_min or (route.prompt_max is not None and len(prompt) > route.prompt_max):
            raise _Problem(
                "prompt",
                f"has {len(prompt):,} characters; {spec.name} accepts {route.prompt_min} to {route.prompt_max}",
            )
        if self.limits.max_prompt_chars is not None and len(prompt) > self.limits.max_prompt_chars:
            allowed = self.limits.max_prompt_chars
            raise _Problem("prompt", f"has {len(prompt):,} characters; this run allows {allowed} (--max-prompt-chars)")
        image_ref, image_path, image_identity, image_key = self._image(cells.get("image_url", "").strip())
        params, images, identities = self._params(spec, route, cells, compared=compared is not None)
        key = row_key(spec.api_id, route.name, {**params, **identities}, prompt, image_identity)
        given_id = cells.get("id", "").strip()
        if len(given_id) > MAX_ID_CHARS:
            raise _Problem("id", f"has {len(given_id):,} characters; ids name files and may have {MAX_ID_CHARS}")
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
            raise _Problem("model", str(exc.args[0])) from None

    def _image(self, ref: str, column: str = "image_url") -> tuple[str, Path | None, str, str | None]:
        """(the reference, a local path, what identifies the image, where its copy is kept)."""
        try:
            return self._image_of("image_url", ref)
        except _Problem as problem:
            raise _Problem(column, problem.reason) from None

    def _image_of(self, _field: str, ref: str) -> tuple[str, Path | None, str, str | None]:
        if not ref:
            raise _Problem("image_url", "is empty")
        if ref.lower().startswith("data:"):
            match = DATA_URI.match(ref)
            if not match:
                raise _Problem("image_url", "is a data URI but not data:image/<type>;base64,<data>")
            if len(match.group(2)) * 3 // 4 > self.limits.max_image_bytes + 2:
                raise _Problem("image_url", self._too_big(len(match.group(2)) * 3 // 4, "the data URI's image"))
            try:
                payload = base64.b64decode(match.group(2), validate=True)
            except (binascii.Error, ValueError):
                raise _Problem("image_url", "has invalid base64 in its data URI") from None
            if not payload:
                raise _Problem("image_url", "is a data URI with no data")
            mime = sniff_image_type(payload)
            if mime is None:
                raise _Problem("image_url", "is a data URI whose data is not a PNG, JPEG, GIF or WebP image")
            digest = hashlib.sha256(payload).hexdigest()
            return ref, None, f"sha256:{digest}", _input_key(digest, mime)
        if _SPACE_OR_CONTROL.search(ref):
            raise _Problem("image_url", "contains spaces or control characters; encode them in the URL (%20)")
        parts = urlsplit(ref)
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            if not parts.hostname:
                raise _Problem("image_url", f"is not a valid URL: {shorten_image_ref(ref)!r}")
            if scheme == "http" and not self.limits.allow_http_images:
                raise _Problem("image_url", "uses http://; only https:// is accepted unless --allow-http-images")
            return ref, None, ref, None
        if scheme == "s3":
            if not parts.netloc or not parts.path.strip("/"):
                raise _Problem("image_url", f"is not an s3://bucket/key URI: {shorten_image_ref(ref)!r}")
            return ref, None, ref, None
        if scheme == "file":
            raise _Problem("image_url", "file:// URLs are not accepted; give the file's path instead")
        if scheme and len(scheme) > 1:
            raise _Problem("image_url", f"uses {scheme}:// but only https URLs, data URIs and local paths are accepted")
        if self.base_dir is None or self.image_root is None:
            raise _Problem("image_url", "is a local path, but the input was read from S3: use s3:// or https URLs")
        path = (self.base_dir / ref).resolve()
        if not path.is_relative_to(self.image_root):
            raise _Problem(
                "image_url",
                f"{shorten_image_ref(ref)!r} is outside {self.image_root}, the folder local images must be in "
                "(--image-root)",
            )
        found = self.image_digests.get(path)
        if found is None:
            found = self._local_image_digest(path, ref)
            self.image_digests[path] = found
        digest, mime = found
        return ref, path, f"sha256:{digest}", _input_key(digest, mime)

    def _local_image_digest(self, path: Path, ref: str) -> tuple[str, str]:
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise _Problem("image_url", f"{ref!r} is not a file")
            if size > self.limits.max_image_bytes:
                raise _Problem("image_url", self._too_big(size, repr(ref)))
            data = path.read_bytes()
        except FileNotFoundError:
            raise _Problem("image_url", f"local image {ref!r} not found (looked at {path})") from None
        except OSError as exc:
            raise _Problem("image_url", f"local image {ref!r} cannot be read: {exc.strerror}") from None
        mime = sniff_image_type(data)
        if mime is None:
            raise _Problem("image_url", f"{ref!r} is not a PNG, JPEG, GIF or WebP image")
        return hashlib.sha256(data).hexdigest(), mime

    def _too_big(self, size: int, what: str) -> str:
        limit = self.limits.max_image_bytes
        return f"{what} is {size:,} bytes; the limit is {megabytes(limit)} (--max-image-mb)"

    def _params(
        self, spec: ModelSpec, route: Route, cells: Mapping[str, str], *, compared: bool
    ) -> tuple[dict[str, Any], dict[str, tuple[tuple[str, ...], bool]], dict[str, Any]]:
        """(request fields, further images, what identifies those images for the row key)."""
        given: dict[str, tuple[Any, str]] = {}
        for name, value in self.defaults.items():
            given[name] = (value, f"{name} (run default)")
        for column, value in cells.items():
            if column in RESERVED_COLUMNS or not value.strip():
                continue
            name = _canonical_name(column)
            if name in _KNOWN_PARAMS:
                given[name] = (value, column)
        params: dict[str, Any] = {}
        images: dict[str, tuple[tuple[str, ...], bool]] = {}
        identities: dict[str, Any] = {}
        for name, (value, source) in given.items():
            # Prompt expansion has two spellings; a route takes the one its schema has.
            target = name if name in route.params else route.expansion_field if name in EXPANSION_ALIASES else None
            param = route.params.get(target) if target else None
            if (target is None or param is None) and compared:
                # A comparison asks each model for what it can do: a setting it has no field for
                # is not sent to it (its manifest row's params say what was).
                continue
            if target is None or param is None:
                supported = ", ".join(sorted(n for n, p in route.params.items() if p.offered)) or "none"
                raise _Problem(
                    source, f"is not a parameter of {spec.name} on the {route.name} path (supported: {supported})"
                )
            if not param.offered:
                raise _Problem(source, f"of {spec.name} takes {UNOFFERED_KINDS[param.type]}, which rows cannot give")
            if param.type in IMAGE_KINDS:
                refs, ids = self._images(str(value), param, source, spec)
                images[target] = (refs, param.type == "image_list")
                identities[target] = ids if param.type == "image_list" else ids[0]
                continue
            params[target] = _coerce(param, value, field=source, model=spec.name)
        for name, param in route.params.items():
            if name not in params and name not in images and param.default is not None and param.offered:
                params[name] = param.default
        return dict(sorted(params.items())), dict(sorted(images.items())), identities

    def _images(self, text: str, param: Param, source: str, spec: ModelSpec) -> tuple[tuple[str, ...], list[str]]:
        """An image cell: one reference, or (for a list field) several separated by whitespace."""
        parts = text.split() if param.type == "image_list" else [text.strip()]
        if param.type == "image" and len(text.split()) > 1 and not text.lower().startswith("data:"):
            raise _Problem(source, f"takes one image on {spec.name}; got {len(text.split())}")
        if param.max_items is not None and len(parts) > param.max_items:
            raise _Problem(source, f"takes at most {param.max_items} images on {spec.name}; got {len(parts)}")
        refs, ids = [], []
        for part in parts:
            try:
                ref, path, identity, _key = self._image_of(source, part)
            except _Problem as problem:
                raise _Problem(source, problem.reason) from None
            refs.append(str(path) if path is not None else ref)
            ids.append(identity)
        return tuple(refs), ids


def _coerce(param: Param, value: Any, *, field: str, model: str) -> Any:
    """Turn a CSV cell (or a run default) into the value the model's schema wants, or explain why not.

    Everything here comes from the schema: integers and numbers with their enums and ranges,
    numbers some models want spelt as strings, enums whose case differs between models.
    """
    text = str(value).strip()
    if param.type in ("integer", "number") or param.numeric_strings:
        pattern = r"[+-]?\d+" if param.type != "number" else r"[+-]?(\d+(\.\d*)?|\.\d+)"
        if isinstance(value, bool) or not re.fullmatch(pattern, text):
            kind = "a number" if param.type == "number" else "a whole number"
            raise _Problem(field, f"must be {kind}, got {text!r} ({model})")
        number: int | float = float(text) if param.type == "number" else int(text)
        if param.choices and not any(_same_number(number, choice) for choice in param.choices):
            raise _Problem(field, f"must be one of {_choices(param)}, got {text} ({model})")
        if param.minimum is not None and number < param.minimum:
            raise _Problem(field, f"must be at least {_number(param.minimum)}, got {text} ({model})")
        if param.maximum is not None and number > param.maximum:
            raise _Problem(field, f"must be at most {_number(param.maximum)}, got {text} ({model})")
        if param.numeric_strings:
            # Sent in the schema's own spelling ("5", not 5 or "05").
            return next((c for c in param.choices or () if _same_number(number, c)), str(int(number)))
        return number
    if param.type == "boolean":
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise _Problem(field, f"must be true or false, got {text!r}")
    if param.type == "uri":
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise _Problem(field, f"must be an http(s) URL, got {text!r}")
        return text
    if param.choices:
        # Vendors differ in case ('480p' vs '480P'); accept either, send the model's spelling.
        for choice in param.choices:
            if str(choice).lower() == text.lower():
                return choice
        raise _Problem(field, f"must be one of {_choices(param)}, got {text!r} ({model})")
    if not text:
        raise _Problem(field, "is empty")
    if param.max_length is not None and len(text) > param.max_length:
        raise _Problem(field, f"has {len(text):,} characters; {model} accepts at most {param.max_length}")
    return text


def _same_number(number: float, choice: Any) -> bool:
    try:
        return float(choice) == number
    except (TypeError, ValueError):
        return False


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _input_key(digest: str, mime: str) -> str:
    return f"{INPUTS_PREFIX}{digest}.{_EXTENSIONS.get(mime, 'img')}"


def run_model(name: str) -> ModelSpec:
    """The run's default model; an unknown or unsupported one is an :class:`InputError` naming the field."""
    try:
        spec = get_model(name)
    except KeyError as exc:
        raise InputError(str(exc.args[0]), field="model") from None
    if spec.unsupported:
        raise InputError(f"{spec.name} cannot be run by this pipeline: it {spec.unsupported}", field="model")
    return spec


def _canonical_name(column: str) -> str:
    return column.strip().lower()


def _choices(param: Param) -> str:
    return ", ".join(str(choice) for choice in param.choices or ())


def _shown_cells(cells: Mapping[str, str | None]) -> dict[str, str]:
    return {name: shorten_image_ref(value or "") for name, value in cells.items() if name in RESERVED_COLUMNS}
