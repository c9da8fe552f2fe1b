"""Build the model catalogue (``models.json`` beside this file) from the vendor's documentation.

Usage: ``python -m i2v.api.catalogue.build VENDOR_FOLDER [--also FILE ...] [--out PATH] [--check]``
(``make models`` runs it). ``VENDOR_FOLDER`` is a snapshot of the vendor's
``api-references`` folder: ``video-models/**`` holds one OpenAPI file per model and one
documentation page (``.md``) per model, and the page is what says which model ids a file
documents and on which path (the files' own ``model`` enums are sometimes copied from a
neighbour). ``--also`` adds single OpenAPI files kept elsewhere (the legacy endpoint's).

Every model whose create request takes an input image is written, in the project's own
compact form: its routes, and per route each field's kind, enum, range, default and whether
it is required. A model that needs an input the pipeline cannot give (a video, an audio
track, a mask, structured keyframes) is kept with the reason it is unsupported. The output
is deterministic (sorted, no timestamps), so ``--check`` (and the drift test) can compare
it with the shipped file byte for byte.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

UNIVERSAL_PATHS = ("/v2/video/generations", "/v1/video/generations", "/video/generations")
UNIVERSAL_PATH = UNIVERSAL_PATHS[0]
SCHEMA_VERSION = 1
OUT = Path(__file__).with_name("models.json")

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
_MAX_DESCRIPTION = 160


@dataclass
class _Operation:
    file: str  # relative to the vendor folder
    path: str
    schema: dict[str, Any]
    enum_ids: tuple[str, ...]
    #: Result-URL lifetime the whole file (answers included) states, in seconds.
    url_ttl: int | None = None


@dataclass
class _Claim:
    op: _Operation
    path: str  # the path the model is served on (a page may name another than the file's)
    title: str
    by_page: bool
    #: Seconds a result URL lasts, where the page's sample answer or the schema says.
    url_ttl: int | None = None
    #: Fields the page's own sample sends on a path its schema file does not document
    #: (wan2.2's legacy sample sends "duration": "5"): name -> the value sent.
    sample: dict[str, str] | None = None


def _short(text: Any) -> str:
    """The first sentence of a vendor description, plain, bounded."""
    if not isinstance(text, str):
        return ""
    plain = re.sub(r"\s+", " ", re.sub(r"[`*]|<[^>]+>", "", text)).strip()
    first = re.split(r"(?<=[.!?])\s", plain, maxsplit=1)[0]
    return first if len(first) <= _MAX_DESCRIPTION else first[: _MAX_DESCRIPTION - 1].rstrip() + "…"


def _load_operations(folder: Path, files: Iterable[Path], root_for: Path | None = None) -> list[_Operation]:
    ops: list[_Operation] = []
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
            ops.append(_Operation(name, path, schema, tuple(ids), _url_ttl(text)))
    return ops


def _kind(name: str, prop: dict[str, Any]) -> str:
    """What a field holds, in the pipeline's terms."""
    lowered = name.lower()
    if "anyOf" in prop or "oneOf" in prop:
        variants = prop.get("anyOf") or prop.get("oneOf") or []
        if "image" in lowered and all(v.get("type") in ("string", "array") for v in variants):
            return "image"
        return "object"
    kind = prop.get("type", "string")
    if kind == "array":
        items = prop.get("items") or {}
        if items.get("type") == "string" and "image" in lowered:
            return "image_list"
        if items.get("type") == "string" and ("video" in lowered or "audio" in lowered):
            return "media_list"
        return "list" if items.get("type") in ("string", "integer", "number") else "object"
    if kind == "object":
        return "object"
    if kind == "string" and (prop.get("format") == "uri" or lowered.endswith("_url") or lowered == "first_frame_image"):
        if "mask" in lowered:
            return "mask"
        if "image" in lowered:
            return "image"
        if "video" in lowered:
            return "video"
        if "audio" in lowered:
            return "audio"
        return "uri"
    if kind in ("string", "integer", "number", "boolean"):
        return str(kind)
    return "object"


_UNSUPPORTED_KINDS = {
    "video": "a video",
    "media_list": "videos or audio tracks",
    "audio": "an audio track",
    "mask": "a mask",
    "object": "structured input",
    "list": "a list",
}


def _number(kind: str, value: Any) -> Any:
    """Vendor files write some numbers as strings (``"default": "10"``): keep the value, not the spelling."""
    if kind == "integer" and isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    if kind == "number" and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _field(name: str, prop: dict[str, Any], required: bool) -> dict[str, Any]:
    kind = _kind(name, prop)
    out: dict[str, Any] = {"kind": kind}
    if required:
        out["required"] = True
    if "enum" in prop:
        out["enum"] = [_number(kind, v) for v in prop["enum"]]
        if kind == "string" and all(isinstance(v, str) and re.fullmatch(r"\d+", v) for v in prop["enum"]):
            # Numbers the API wants as strings ("5", "10"): rows may write them either way.
            out["numeric_strings"] = True
    if "default" in prop and prop["default"] is not None:
        out["default"] = _number(kind, prop["default"])
    for key, ours in (("minimum", "min"), ("maximum", "max"), ("minLength", "min_length"), ("maxLength", "max_length")):
        if key in prop:
            out[ours] = prop[key]
    for key, ours in (("minItems", "min_items"), ("maxItems", "max_items")):
        if key in prop and kind == "image_list":
            out[ours] = prop[key]
    if kind == "string" and "enum" not in prop and re.fullmatch(r"\d+", str(prop.get("default", ""))):
        out["numeric_strings"] = True
    description = _short(prop.get("description"))
    if description:
        out["description"] = description
    return out


def _route_name(path: str) -> str:
    return "universal" if path in UNIVERSAL_PATHS else "legacy"


def _route(claim: _Claim) -> dict[str, Any]:
    schema = claim.op.schema
    required = set(schema.get("required") or [])
    for name, prop in schema["properties"].items():
        # One vendor file marks a field required inside the field itself.
        if prop.get("required") is True:
            required.add(name)
    fields = {
        name: _field(name, prop, name in required)
        for name, prop in sorted(schema["properties"].items())
        if name != "model"
    }
    legacy = _route_name(claim.path) == "legacy"
    route: dict[str, Any] = {"name": _route_name(claim.path), "path": claim.path}
    if legacy:
        # The vendor's own sample for the legacy path sends numbers as strings ("duration": "5").
        route["coerces_numbers"] = True
    for name, value in sorted((claim.sample or {}).items()):
        if name not in fields and name != "model" and re.fullmatch(r"\d+", value):
            # The only value the vendor shows for a field of this path: the one it takes.
            fields[name] = {"kind": "integer", "enum": [int(value)], "default": int(value), "from_sample": True}
    route["image_field"] = _primary_image(fields)
    route["fields"] = fields
    route["source"] = claim.op.file
    return route


def _primary_image(fields: dict[str, dict[str, Any]]) -> str | None:
    """The field a row's ``image_url`` column fills: ``image_url`` itself, else the model's first frame."""
    images = [name for name, f in fields.items() if f["kind"] in ("image", "image_list")]
    for name in ("image_url", "first_frame_image"):
        if name in images:
            return name
    required = [name for name in images if fields[name].get("required")]
    chosen = required or images
    return chosen[0] if chosen else None


def _image_fields(route: dict[str, Any]) -> list[str]:
    return [name for name, f in route["fields"].items() if f["kind"] in ("image", "image_list")]


def _unsupported(route: dict[str, Any]) -> str | None:
    needs = [
        f"{name} ({_UNSUPPORTED_KINDS[f['kind']]})"
        for name, f in route["fields"].items()
        if f.get("required") and f["kind"] in _UNSUPPORTED_KINDS
    ]
    if needs:
        return "needs " + ", ".join(needs) + ", which the pipeline's rows do not carry"
    return None


_SAMPLE_FIELD = re.compile(r'^\s*"(\w+)":\s*"([^"\n]*)"', re.MULTILINE)


def _sample_fields(page: Path) -> dict[str, str]:
    """The body fields of the page's first Python sample (``data = {...}``), as sent."""
    text = page.read_text(encoding="utf-8")
    match = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    body = re.search(r"data = \{(.*?)\}", match.group(1), re.DOTALL) if match else None
    return dict(_SAMPLE_FIELD.findall(body.group(1))) if body else {}


def _url_ttl(*texts: str) -> int | None:
    """The shortest result-URL lifetime any of ``texts`` states, in seconds (None: none stated)."""
    found = [int(s) for text in texts for s in _SIGNED_TTL.findall(text)]
    found += [int(hours) * 3600 for text in texts for hours in _STATED_TTL.findall(text)]
    return min(found) if found else None


def _pages(folder: Path, ops_by_file: dict[str, list[_Operation]]) -> list[tuple[Path, list[str], str, str, str]]:
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


def build(folder: Path, also: Iterable[Path] = ()) -> dict[str, Any]:
    """The catalogue, as a JSON-ready dict, from a vendor ``api-references`` folder."""
    folder = folder.resolve()
    ops = _load_operations(folder, sorted(folder.rglob("video-models/**/*.json")), root_for=folder)
    ops += _load_operations(folder, sorted(also))
    ops_by_file: dict[str, list[_Operation]] = {}
    for op in ops:
        ops_by_file.setdefault(op.file, []).append(op)

    claims: dict[str, list[_Claim]] = {}
    broken: dict[str, tuple[str, str, str]] = {}  # id -> (title, spec file, reason)
    for page, ids, title, spec, path in _pages(folder, ops_by_file):
        spec_ops = ops_by_file.get(spec, [])
        if not spec_ops:
            json_path = folder / spec
            exists = json_path.is_file()
            missing = "the vendor's schema file is empty" if exists else "the vendor's schema file is missing"
            for model_id in ids:
                broken.setdefault(model_id, (title, spec, missing))
            continue
        op = next((o for o in spec_ops if o.path == path), spec_ops[0])
        for model_id in ids or list(op.enum_ids):
            # The page's path, and the paths the file itself documents.
            sample = _sample_fields(page) if op.path != path else None
            ttl = min(
                (t for t in (_url_ttl(page.read_text(encoding="utf-8")), op.url_ttl) if t is not None), default=None
            )
            claims.setdefault(model_id, []).append(_Claim(op, path, title, by_page=True, sample=sample, url_ttl=ttl))
            for own in spec_ops:
                if own.path != path:
                    claims[model_id].append(_Claim(own, own.path, title, by_page=True))
    for op in ops:
        for model_id in op.enum_ids:
            # A file's own enum counts only where no page already documents that route for the id:
            # some files carry a neighbour's id, copied along with its schema.
            if any(_route_name(c.path) == _route_name(op.path) for c in claims.get(model_id, [])):
                continue
            claims.setdefault(model_id, []).append(_Claim(op, op.path, "", by_page=False, url_ttl=op.url_ttl))

    models: list[dict[str, Any]] = []
    for model_id in sorted(set(claims) | set(broken)):
        if model_id not in claims:
            title, _spec, why = broken[model_id]
            models.append(
                {"id": model_id, "title": title, "aliases": [], "supported": False, "reason": why, "routes": []}
            )
            continue
        routes: dict[str, dict[str, Any]] = {}
        title = ""
        # Pages first, then files in path order: the first schema for each route wins.
        for claim in sorted(claims[model_id], key=lambda c: (not c.by_page, c.op.file, c.path)):
            if claim.path in UNIVERSAL_PATHS[1:]:
                continue  # the same route under older spellings of the universal path
            route = _route(claim)
            title = title or claim.title
            if route["name"] not in routes:
                routes[route["name"]] = route
        ordered = [routes[name] for name in ("universal", "legacy") if name in routes]
        if not any(_image_fields(r) for r in ordered):
            continue  # text-to-video, video-to-video: not an image-to-video model
        aliases = _aliases(model_id, ordered, claims)
        reasons = [_unsupported(r) for r in ordered]
        reason = reasons[0] if all(reasons) else None  # runnable when any of its routes is
        entry: dict[str, Any] = {
            "id": model_id,
            "title": title,
            "aliases": aliases,
            "supported": reason is None,
        }
        if reason:
            entry["reason"] = reason
        ttls = [c.url_ttl for c in claims[model_id] if c.url_ttl is not None]
        if ttls:
            entry["url_ttl_seconds"] = min(ttls)
        entry["routes"] = ordered
        models.append(entry)
    _drop_colliding_aliases(models)
    return {"schema_version": SCHEMA_VERSION, "models": models}


def _aliases(model_id: str, routes: list[dict[str, Any]], claims: dict[str, list[_Claim]]) -> list[str]:
    """Other names a model answers to: its schema file's name, under the id's namespace.

    ``alibaba/wan-2-6-i2v`` is documented in ``wan2.6-i2v.json``, and users know it by that name.
    """
    if model_id.count("/") != 1:
        return []  # ids such as kling-video/v1/pro/image-to-video are their own file names already
    namespace = model_id.split("/", 1)[0] + "/"
    names = set()
    for route in routes:
        stem = Path(route["source"]).name.removesuffix(".json")
        if stem.endswith(".legacy-endpoint") or stem != stem.lower():
            continue
        alias = namespace + stem
        if alias != model_id and not any(c.op.file.endswith(stem + ".json") for c in claims.get(alias, [])):
            names.add(alias)
    return sorted(names)


def _drop_colliding_aliases(models: list[dict[str, Any]]) -> None:
    ids = {m["id"] for m in models}
    counts: dict[str, int] = {}
    for m in models:
        for a in m["aliases"]:
            counts[a] = counts.get(a, 0) + 1
    for m in models:
        m["aliases"] = [a for a in m["aliases"] if a not in ids and counts[a] == 1]


def render(catalogue: dict[str, Any]) -> str:
    """The file's text: one stable spelling, so regenerating gives the same bytes."""
    return json.dumps(catalogue, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check``, compare) the catalogue; the exit status says how it went."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("vendor", type=Path, help="the vendor's api-references folder")
    parser.add_argument("--also", type=Path, action="append", default=[], help="another OpenAPI file to read")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="fail if the shipped file differs")
    args = parser.parse_args(argv)
    if not (args.vendor / "video-models").is_dir():
        parser.error(f"{args.vendor} has no video-models/ folder")
    text = render(build(args.vendor, args.also))
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run make models", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    models = json.loads(text)["models"]
    supported = sum(m["supported"] for m in models)
    print(f"wrote {args.out}: {len(models)} image-to-video models, {supported} supported")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
