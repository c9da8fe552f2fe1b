"""Reading the vendor's documentation: its per-model OpenAPI files and the pages that name them.

A snapshot of the vendor's ``api-references`` folder holds, under ``video-models/``, one
OpenAPI file and one documentation page (``.md``) per model. The files give each create
request's schema (:func:`load_operations`); the pages say which model ids a file documents
and on which path (:func:`pages`), what the page's own sample sends (:func:`sample_fields`),
and how long result URLs last (:func:`url_ttl`). What the schemas become is
:mod:`i2v.api.catalogue.schema_fields`' business.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PAGE_IDS = re.compile(r"^\* `([^`]+)`\s*$", re.MULTILINE)
_PAGE_OPS = re.compile(
    r'openapi-operation spec="[^"]*" path="([^"]+)" method="post"[^\n]*\n\[[^\]]*\]\(([^)]+\.json)\)', re.MULTILINE
)
_TITLE = re.compile(r"^# (.+)$", re.MULTILINE)
#: How long a result URL lasts, as the vendor's sample answers sign it (S3 and TOS presigned
#: URLs carry their lifetime in seconds) or as a schema says it in words.
_SIGNED_TTL = re.compile(r"X-(?:Amz|Tos)-Expires=(\d+)")
_STATED_TTL = re.compile(r"URLs expire within (\d+)(?:-\d+)? hours")
_DOCS_ROOT = "/docs/api-references/"
_SAMPLE_FIELD = re.compile(r'^\s*"(\w+)":\s*"([^"\n]*)"', re.MULTILINE)


@dataclass
class Operation:
    """One create request (a POST with a JSON body) an OpenAPI file documents."""

    file: str  # relative to the vendor folder
    path: str
    schema: dict[str, Any]
    enum_ids: tuple[str, ...]
    #: Result-URL lifetime the whole file (answers included) states, in seconds.
    url_ttl: int | None = None


def load_operations(folder: Path, files: Iterable[Path], root_for: Path | None = None) -> list[Operation]:
    """The create operations of ``files``; empty or unreadable files, and bodies without fields, give none."""
    ops: list[Operation] = []
    for file in files:
        text = file.read_text(encoding="utf-8").strip()
        if not text:
            continue
        try:
            spec = json.loads(text)
        except json.JSONDecodeError:
            continue
        name = file.relative_to(root_for).as_posix() if root_for else file.name
        for path, operations in sorted((spec.get("paths") or {}).items()):
            post = (operations or {}).get("post")
            if not post:
                continue
            schema = (((post.get("requestBody") or {}).get("content") or {}).get("application/json") or {}).get(
                "schema"
            )
            if not isinstance(schema, dict) or "properties" not in schema:
                continue
            model = schema["properties"].get("model") or {}
            ids = model.get("enum") or ([model["const"]] if "const" in model else [])
            ops.append(Operation(name, path, schema, tuple(ids), url_ttl(text)))
    return ops


def sample_fields(page: Path) -> dict[str, str]:
    """The body fields of the page's first Python sample (``data = {...}``), as sent."""
    text = page.read_text(encoding="utf-8")
    match = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    body = re.search(r"data = \{(.*?)\}", match.group(1), re.DOTALL) if match else None
    return dict(_SAMPLE_FIELD.findall(body.group(1))) if body else {}


def url_ttl(*texts: str) -> int | None:
    """The shortest result-URL lifetime any of ``texts`` states, in seconds (None: none stated)."""
    found = [int(s) for text in texts for s in _SIGNED_TTL.findall(text)]
    found += [int(hours) * 3600 for text in texts for hours in _STATED_TTL.findall(text)]
    return min(found) if found else None


def pages(folder: Path, ops_by_file: dict[str, list[Operation]]) -> list[tuple[Path, list[str], str, str, str]]:
    """(page, ids, title, spec file, path) for each create operation a documentation page names."""
    found = []
    files_lower = {name.lower(): name for name in ops_by_file}
    all_json = {
        p.relative_to(folder).as_posix().lower(): p.relative_to(folder).as_posix() for p in folder.rglob("*.json")
    }
    for page in sorted((folder / "video-models").rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        ids = _PAGE_IDS.findall(text.split("## ", 1)[0]) if "valid for the following" in text else []
        title_match = _TITLE.search(text)
        title = title_match.group(1).strip() if title_match else ""
        for path, url in _PAGE_OPS.findall(text):
            if _DOCS_ROOT not in url:
                continue
            wanted = url.split(_DOCS_ROOT, 1)[1]
            spec = files_lower.get(wanted.lower()) or all_json.get(wanted.lower())
            if spec is None:
                # A page with a mistyped link ("ffabric-1.0-fast.json"): the closest file in its folder.
                folder_part = wanted.rsplit("/", 1)[0].lower() + "/"
                same = [k for k in all_json if k.startswith(folder_part)]
                close = difflib.get_close_matches(wanted.lower(), same, n=1, cutoff=0.9)
                spec = all_json[close[0]] if close else wanted
            found.append((page, ids, title, spec, path))
    return found
