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

This module joins what the vendor's pages and files say about each model id and writes the
file; reading them is :mod:`i2v.api.catalogue.vendor_docs`, and the fields and routes a
schema becomes are :mod:`i2v.api.catalogue.schema_fields`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i2v.api.catalogue.schema_fields import UNIVERSAL_PATHS, image_fields, route_from_schema, route_name, unsupported
from i2v.api.catalogue.vendor_docs import Operation, load_operations, pages, sample_fields, url_ttl

SCHEMA_VERSION = 1
OUT = Path(__file__).with_name("models.json")


@dataclass
class _Claim:
    op: Operation
    path: str  # the path the model is served on (a page may name another than the file's)
    title: str
    by_page: bool
    #: Seconds a result URL lasts, where the page's sample answer or the schema says.
    url_ttl: int | None = None
    #: Fields the page's own sample sends on a path its schema file does not document
    #: (wan2.2's legacy sample sends "duration": "5"): name -> the value sent.
    sample: dict[str, str] | None = None


def _route_of(claim: _Claim) -> dict[str, Any]:
    """The catalogue's route for what ``claim`` documents."""
    return route_from_schema(claim.op.schema, claim.path, claim.op.file, claim.sample)


def build(folder: Path, also: Iterable[Path] = ()) -> dict[str, Any]:
    """The catalogue, as a JSON-ready dict, from a vendor ``api-references`` folder."""
    folder = folder.resolve()
    ops = load_operations(folder, sorted(folder.rglob("video-models/**/*.json")), root_for=folder)
    ops += load_operations(folder, sorted(also))
    ops_by_file: dict[str, list[Operation]] = {}
    for op in ops:
        ops_by_file.setdefault(op.file, []).append(op)

    claims: dict[str, list[_Claim]] = {}
    broken: dict[str, tuple[str, str, str]] = {}  # id -> (title, spec file, reason)
    for page, ids, title, spec, path in pages(folder, ops_by_file):
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
            sample = sample_fields(page) if op.path != path else None
            ttl = min(
                (t for t in (url_ttl(page.read_text(encoding="utf-8")), op.url_ttl) if t is not None), default=None
            )
            claims.setdefault(model_id, []).append(_Claim(op, path, title, by_page=True, sample=sample, url_ttl=ttl))
            for own in spec_ops:
                if own.path != path:
                    claims[model_id].append(_Claim(own, own.path, title, by_page=True))
    for op in ops:
        for model_id in op.enum_ids:
            # A file's own enum counts only where no page already documents that route for the id:
            # some files carry a neighbour's id, copied along with its schema.
            if any(route_name(c.path) == route_name(op.path) for c in claims.get(model_id, [])):
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
            route = _route_of(claim)
            title = title or claim.title
            if route["name"] not in routes:
                routes[route["name"]] = route
        ordered = [routes[name] for name in ("universal", "legacy") if name in routes]
        if not any(image_fields(r) for r in ordered):
            continue  # text-to-video, video-to-video: not an image-to-video model
        aliases = _aliases(model_id, ordered, claims)
        reasons = [unsupported(r) for r in ordered]
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
