"""A row's image cells: each reference checked, and what identifies the image it names.

An image reference is an https URL (http only with ``--allow-http-images``), an
``s3://bucket/key`` URI, a ``data:image/...;base64,`` URI, or a path to a local image
taken from the input's folder and kept inside the image root (``--image-root``). A URL
is identified by itself; an inline or local image by the SHA-256 of its bytes, which also
names the copy kept in the destination under :data:`INPUTS_PREFIX`. Each local file is
read and digested once per shard, however many rows name it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from pathlib import Path
from urllib.parse import urlsplit

from i2v.api.models import ModelSpec, Param
from i2v.inputs.row import DATA_URI, CellProblem, shorten_image_ref, sniff_image_type
from i2v.limits import Limits, megabytes

#: Where a copy of each local or inline image is kept in the destination, by content.
INPUTS_PREFIX = "inputs/"
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}
_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")

#: (the reference, a local path, what identifies the image, where its copy is kept).
ResolvedImage = tuple[str, Path | None, str, str | None]


class ImageCells:
    """Checks the image references of one input's rows; a local image's digest is kept for the next row naming it."""

    def __init__(self, *, base_dir: Path | None, limits: Limits) -> None:
        self.base_dir = base_dir
        self.limits = limits
        root = limits.image_root or base_dir
        self.image_root = Path(root).resolve() if root else None
        self.image_digests: dict[Path, tuple[str, str]] = {}

    def resolve(self, ref: str) -> ResolvedImage:
        """The main image (the ``image_url`` column); a bad reference is a problem of that column."""
        if not ref:
            raise CellProblem("image_url", "is empty")
        if ref.lower().startswith("data:"):
            match = DATA_URI.match(ref)
            if not match:
                raise CellProblem("image_url", "is a data URI but not data:image/<type>;base64,<data>")
            if len(match.group(2)) * 3 // 4 > self.limits.max_image_bytes + 2:
                raise CellProblem("image_url", self._too_big(len(match.group(2)) * 3 // 4, "the data URI's image"))
            try:
                payload = base64.b64decode(match.group(2), validate=True)
            except (binascii.Error, ValueError):
                raise CellProblem("image_url", "has invalid base64 in its data URI") from None
            if not payload:
                raise CellProblem("image_url", "is a data URI with no data")
            mime = sniff_image_type(payload)
            if mime is None:
                raise CellProblem("image_url", "is a data URI whose data is not a PNG, JPEG, GIF or WebP image")
            digest = hashlib.sha256(payload).hexdigest()
            return ref, None, f"sha256:{digest}", input_key(digest, mime)
        if _SPACE_OR_CONTROL.search(ref):
            raise CellProblem("image_url", "contains spaces or control characters; encode them in the URL (%20)")
        parts = urlsplit(ref)
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            if not parts.hostname:
                raise CellProblem("image_url", f"is not a valid URL: {shorten_image_ref(ref)!r}")
            if scheme == "http" and not self.limits.allow_http_images:
                raise CellProblem("image_url", "uses http://; only https:// is accepted unless --allow-http-images")
            return ref, None, ref, None
        if scheme == "s3":
            if not parts.netloc or not parts.path.strip("/"):
                raise CellProblem("image_url", f"is not an s3://bucket/key URI: {shorten_image_ref(ref)!r}")
            return ref, None, ref, None
        if scheme == "file":
            raise CellProblem("image_url", "file:// URLs are not accepted; give the file's path instead")
        if scheme and len(scheme) > 1:
            raise CellProblem(
                "image_url", f"uses {scheme}:// but only https URLs, data URIs and local paths are accepted"
            )
        if self.base_dir is None or self.image_root is None:
            raise CellProblem("image_url", "is a local path, but the input was read from S3: use s3:// or https URLs")
        path = (self.base_dir / ref).resolve()
        if not path.is_relative_to(self.image_root):
            raise CellProblem(
                "image_url",
                f"{shorten_image_ref(ref)!r} is outside {self.image_root}, the folder local images must be in "
                "(--image-root)",
            )
        found = self.image_digests.get(path)
        if found is None:
            found = self._local_image_digest(path, ref)
            self.image_digests[path] = found
        digest, mime = found
        return ref, path, f"sha256:{digest}", input_key(digest, mime)

    def param_cell(self, text: str, param: Param, source: str, spec: ModelSpec) -> tuple[tuple[str, ...], list[str]]:
        """A parameter's image cell: one reference, or (for a list field) several separated by whitespace.

        Returns what is sent for each (a local image by its path) and what identifies each.
        """
        parts = text.split() if param.type == "image_list" else [text.strip()]
        if param.type == "image" and len(text.split()) > 1 and not text.lower().startswith("data:"):
            raise CellProblem(source, f"takes one image on {spec.name}; got {len(text.split())}")
        if param.max_items is not None and len(parts) > param.max_items:
            raise CellProblem(source, f"takes at most {param.max_items} images on {spec.name}; got {len(parts)}")
        refs, ids = [], []
        for part in parts:
            try:
                ref, path, identity, _key = self.resolve(part)
            except CellProblem as problem:
                raise CellProblem(source, problem.reason) from None
            refs.append(str(path) if path is not None else ref)
            ids.append(identity)
        return tuple(refs), ids

    def _local_image_digest(self, path: Path, ref: str) -> tuple[str, str]:
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise CellProblem("image_url", f"{ref!r} is not a file")
            if size > self.limits.max_image_bytes:
                raise CellProblem("image_url", self._too_big(size, repr(ref)))
            data = path.read_bytes()
        except FileNotFoundError:
            raise CellProblem("image_url", f"local image {ref!r} not found (looked at {path})") from None
        except OSError as exc:
            raise CellProblem("image_url", f"local image {ref!r} cannot be read: {exc.strerror}") from None
        mime = sniff_image_type(data)
        if mime is None:
            raise CellProblem("image_url", f"{ref!r} is not a PNG, JPEG, GIF or WebP image")
        return hashlib.sha256(data).hexdigest(), mime

    def _too_big(self, size: int, what: str) -> str:
        limit = self.limits.max_image_bytes
        return f"{what} is {size:,} bytes; the limit is {megabytes(limit)} (--max-image-mb)"


def input_key(digest: str, mime: str) -> str:
    """Where the copy of an inline or local image is kept in the destination."""
    return f"{INPUTS_PREFIX}{digest}.{_EXTENSIONS.get(mime, 'img')}"
