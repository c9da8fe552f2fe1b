"""A row of the input, valid or not, and the stable key of the work it asks for.

A valid :class:`Row` holds everything needed to ask for one video; an
:class:`InvalidRow` holds the field at fault and why (the :class:`CellProblem` raised
while the row was checked). A row's ``key`` is a hash of the work it asks for (model,
route, parameters, prompt, image content), so identical rows are done once and a rerun
recognises work already done.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from i2v.api.models import RouteName
from i2v.errors import InputError
from i2v.inputs.sources import is_s3

#: Turns an ``s3://`` image into a URL the API can fetch (a presigned GET).
Presigner = Callable[[str], str]

KEY_LENGTH = 20
DATA_URI = re.compile(r"^data:(image/[a-z0-9.+-]+);base64,(.*)$", re.IGNORECASE | re.DOTALL)
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


@dataclass(frozen=True)
class Row:
    """A valid row: everything needed to ask for one video."""

    index: int
    line: int
    #: As written in the input (or the row key when none was given); the manifest keeps it.
    id: str
    #: What names the row's files: the id made safe (see :mod:`i2v.inputs.safe_names`).
    name: str
    key: str
    model: str
    api_model: str
    route: RouteName
    prompt: str
    image_ref: str
    params: Mapping[str, Any]
    image_path: str | None = None
    #: For a local file or a data URI: where its copy lives in the destination
    #: (``inputs/<sha256>.<ext>``), the ``image_url`` the manifest gives. None for a URL.
    image_key: str | None = None
    #: The field the main image goes in (``image_url`` for most models), and whether the
    #: model takes it as a list (``image_urls``).
    image_field: str = "image_url"
    image_is_list: bool = False
    #: Further image fields of the model the row filled (``last_image_url``,
    #: ``reference_image_urls``): each reference as the main image's (a URL, an ``s3://``
    #: URI, a data URI, or a local file's resolved path), and whether the field is a list.
    images: Mapping[str, tuple[tuple[str, ...], bool]] = field(default_factory=dict)
    #: False for models whose schema has no prompt (the row's prompt only labels the row).
    sends_prompt: bool = True

    @property
    def image_shown(self) -> str:
        """The image as the manifest names it: the URL, or the key of the destination's copy."""
        return self.image_key or self.image_ref

    def image_bytes(self) -> bytes | None:
        """The image itself, for a local file or a data URI (None for a URL)."""
        if self.image_path is not None:
            return Path(self.image_path).read_bytes()
        match = DATA_URI.match(self.image_ref)
        return base64.b64decode(match.group(2)) if match else None

    def request_body(self, presign: Presigner | None = None) -> dict[str, Any]:
        """The JSON body of the create request.

        Local images become data URIs; ``s3://`` images become URLs from ``presign``.
        """
        image = self.image_ref
        if self.image_path is not None:
            image = image_data_uri(Path(self.image_path))
        elif is_s3(image):
            if presign is None:
                raise InputError(f"{image} needs an S3 client to be sent", row=self.index, field="image_url")
            image = presign(image)
        body: dict[str, Any] = {"model": self.api_model}
        if self.sends_prompt:
            body["prompt"] = self.prompt
        body[self.image_field] = [image] if self.image_is_list else image
        for name, (refs, is_list) in self.images.items():
            sent = [self._send_ref(ref, name, presign) for ref in refs]
            body[name] = sent if is_list else sent[0]
        return {**body, **self.params}

    def _send_ref(self, ref: str, name: str, presign: Presigner | None) -> str:
        """A further image as the API takes it: local files inline, ``s3://`` presigned."""
        if Path(ref).is_absolute():  # the validator resolved a local file to its absolute path
            return image_data_uri(Path(ref))
        if is_s3(ref):
            if presign is None:
                raise InputError(f"{ref} needs an S3 client to be sent", row=self.index, field=name)
            return presign(ref)
        return ref


@dataclass(frozen=True)
class InvalidRow:
    """A row that cannot be sent, with the field at fault and why."""

    index: int
    line: int
    field: str | None
    reason: str
    cells: Mapping[str, str]
    #: The model the row was to run on, in a comparison of models.
    model: str | None = None

    @property
    def message(self) -> str:
        return str(InputError(self.reason, row=self.index, line=self.line, field=self.field))


class CellProblem(Exception):
    """A cell at fault while a row is checked: the row becomes an :class:`InvalidRow` with it."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def row_key(api_model: str, route: str, params: Mapping[str, Any], prompt: str, image_identity: str) -> str:
    """A stable hash of the work a row asks for."""
    canonical = json.dumps(
        {"model": api_model, "route": route, "params": dict(params), "prompt": prompt, "image": image_identity},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:KEY_LENGTH]


def image_data_uri(path: Path) -> str:
    """A local image as a base64 data URI, the form the API accepts for local files."""
    data = path.read_bytes()
    return f"data:{sniff_image_type(data) or 'application/octet-stream'};base64,{base64.b64encode(data).decode()}"


def sniff_image_type(data: bytes) -> str | None:
    """The MIME type of PNG, JPEG, GIF or WebP bytes, from their first bytes."""
    for magic, mime in _IMAGE_MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def shorten_image_ref(ref: str, limit: int = 80) -> str:
    """Data URIs are kilobytes long; keep their type and size, not their payload."""
    match = DATA_URI.match(ref)
    if match:
        return f"data:{match.group(1)};base64,…({len(ref)} chars)"
    return ref if len(ref) <= 2048 else ref[:limit] + "…"
