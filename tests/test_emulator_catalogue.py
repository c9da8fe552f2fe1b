"""The emulator's catalogue endpoints, per-model timings and URL lifetimes, and estimates priced from them.

``GET /v1/models`` is checked against the vendor's ``models`` OpenAPI file and its "Complete
Model List" page: no key, optional sections by ``include``, OR within a filter and AND
across filters, ``/model/{id}`` for one model, ETag and 304.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from i2v.api import prices
from i2v.api.models import MODELS
from i2v.cli.main import main
from i2v.emulator.render import asked_frame
from tests.emulated import Emulator, emulator

WAN25 = "alibaba/wan2.5-i2v-preview"
WAN22 = "alibaba/wan2.2-i2v-plus"
#: A model the shipped table does not price.
UNPRICED = "alibaba/happyhorse-1-0"
#: Models whose vendor pages sign their result URLs for a day, and for ten minutes.
DAY_LONG = "bytedance/seedance-1-0-lite-i2v"
TEN_MINUTES = "magic/image-to-video"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """One emulator for the read-only catalogue checks."""
    with emulator() as running:
        yield running


def _get(emu: Emulator, path: str, params: Any = (), **headers: str) -> httpx.Response:
    """``GET path`` without a key."""
    return httpx.get(f"{emu.base_url}{path}", params=params, headers=headers, timeout=10)


def _ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["data"]]


def test_the_catalogue_needs_no_key_and_lists_every_catalogued_model_by_identity_only(emu: Emulator) -> None:
    """`/v1/models`, `/models` and `/api/v1/models`: a list of every model, id/aliases/type/info/tags and no more."""
    answers = [_get(emu, path) for path in ("/v1/models", "/models", "/api/v1/models")]
    assert all(answer.status_code == 200 for answer in answers)
    assert answers[0].json() == answers[1].json() == answers[2].json()
    data = answers[0].json()
    assert data["object"] == "list"
    assert sorted(item["id"] for item in data["data"]) == sorted(MODELS)
    for item in data["data"]:
        assert set(item) == {"id", "aliases", "type", "info", "tags"}, item["id"]
        assert {"name", "developer"} <= set(item["info"])
        assert "playground:video" in item["tags"]
    wan22 = next(item for item in data["data"] if item["id"] == WAN22)
    assert wan22["aliases"] == list(MODELS[WAN22].aliases)
    assert wan22["type"] == "internal/video-generations/submit"


def test_include_attaches_sections_in_either_spelling_and_ignores_unknown_values(emu: Emulator) -> None:
    """`include=pricing,modalities`, repeated `include`, `all` and `details=true` attach sections; typos do not fail."""
    both = _get(emu, "/v1/models", {"include": "pricing,modalities", "id": WAN25}).json()["data"]
    repeated = _get(emu, "/v1/models", [("include", "pricing"), ("include", "modalities"), ("id", WAN25)]).json()
    assert both == repeated["data"]
    assert set(both[0]) == {"id", "aliases", "type", "info", "tags", "pricing", "modalities"}
    assert both[0]["modalities"] == {"input": ["image", "text"], "output": ["video"]}
    every = {"pricing", "modalities", "capabilities"}
    for query in ({"include": "all"}, {"details": "true"}, {"details": "1"}):
        (item,) = _get(emu, "/v1/models", {**query, "id": WAN25}).json()["data"]
        assert every <= set(item), query
        assert "image_to_video" in item["capabilities"]
    typo = _get(emu, "/v1/models", {"include": "pricingg,nonsense", "id": WAN25})
    assert typo.status_code == 200
    assert not every & set(typo.json()["data"][0])


def test_pricing_follows_the_dated_table_and_never_invents_a_price(emu: Emulator) -> None:
    """Priced models quote `variants` by resolution in USD per second; a model the table lacks is `variable`."""
    data = _get(emu, "/v1/models", {"include": "pricing", "id": f"{WAN22},{UNPRICED}"}).json()["data"]
    by_id = {item["id"]: item["pricing"] for item in data}
    assert by_id[UNPRICED] == {"kind": "variable", "currency": "USD"}
    wan22 = by_id[WAN22]
    assert (wan22["kind"], wan22["currency"], wan22["dimensions"]) == ("variants", "USD", ["resolution"])
    quoted = {v["when"]["resolution"]: v for v in wan22["variants"]}
    assert set(quoted) == {"480P", "1080P"}, "in the spelling the model's schema uses"
    for resolution, variant in quoted.items():
        assert (variant["unit"], variant["per"]) == ("second", 1)
        cny = prices.listed(WAN22)[resolution.lower()]
        assert variant["price"] == pytest.approx(cny / prices.CNY_PER_USD, abs=1e-6)
    kinds = {item["pricing"]["kind"] for item in _get(emu, "/v1/models", {"include": "pricing"}).json()["data"]}
    assert kinds <= {"fixed", "variants", "variable"}


def test_filters_or_within_a_parameter_and_across_parameters(emu: Emulator) -> None:
    """`id` matches ids and aliases in any case; commas and repeats are OR; different filters are AND."""
    alias = next(spec for spec in MODELS.values() if spec.aliases)
    assert _ids(_get(emu, "/v1/models", {"id": alias.aliases[0].upper()})) == [alias.api_id]
    pair = sorted([WAN25, WAN22])
    assert sorted(_ids(_get(emu, "/v1/models", {"id": ",".join(pair)}))) == pair
    assert sorted(_ids(_get(emu, "/v1/models", [("id", WAN25), ("id", WAN22)]))) == pair
    assert len(_ids(_get(emu, "/v1/models", {"capabilities": "IMAGE_TO_VIDEO,text_to_speech"}))) == len(MODELS)
    assert _ids(_get(emu, "/v1/models", {"id": WAN25, "output_modalities": "video"})) == [WAN25]
    assert _ids(_get(emu, "/v1/models", {"id": WAN25, "output_modalities": "text"})) == []
    assert _ids(_get(emu, "/v1/models", {"tags": "playground:chat"})) == []
    assert _ids(_get(emu, "/v1/models", {"id": "no/such-model"})) == []


def test_one_model_by_id_or_alias_and_404_for_neither(emu: Emulator) -> None:
    """`/model/{id}` (slashes as they are) wraps one model as `object: model`; it takes `include`; 404 otherwise."""
    answer = _get(emu, f"/model/{WAN22.upper()}", {"include": "pricing"})
    assert answer.status_code == 200
    document = answer.json()
    assert document["object"] == "model"
    assert document["data"]["id"] == WAN22
    assert document["data"]["pricing"]["kind"] == "variants"
    assert _get(emu, "/model/no/such-model").status_code == 404


def test_an_etag_sent_back_answers_304_until_the_answer_changes(emu: Emulator) -> None:
    """The answer carries an ETag; `If-None-Match` with it gets 304 and no body; another query another tag."""
    first = _get(emu, "/v1/models", {"include": "pricing"})
    tag = first.headers["etag"]
    assert tag.startswith('W/"')
    again = _get(emu, "/v1/models", {"include": "pricing"}, **{"If-None-Match": tag})
    assert (again.status_code, again.content) == (304, b"")
    other = _get(emu, "/v1/models", {"include": "modalities"}, **{"If-None-Match": tag})
    assert other.status_code == 200
    assert other.headers["etag"] != tag


def test_models_take_their_own_generation_time_and_metrics_report_it() -> None:
    """A model given its own generation time takes it, and `/models/metrics` reports it; others keep the default."""
    with emulator(generation_seconds=0.2, generation_jitter=0.0, model_generation_seconds=((WAN22, 40.0),)) as emu:
        data = _get(emu, "/models/metrics", [("aliases", WAN22), ("aliases", WAN25)]).json()
        api = httpx.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {emu.api_key}"}, timeout=10)
        with api:
            image = _data_image()
            slow = api.post("/v2/video/generations", json={"model": WAN22, "prompt": "Rain", "image_url": image})
            quick = api.post("/v2/video/generations", json={"model": WAN25, "prompt": "Rain", "image_url": image})
            time.sleep(1.0)
            states = [
                api.get("/v2/video/generations", params={"generation_id": answer.json()["id"]}).json()["status"]
                for answer in (slow, quick)
            ]
    p50 = {entry["alias"]: entry["metrics"]["duration_ms"]["p50"] for entry in data["models"]}
    assert p50 == {WAN22: 40000.0, WAN25: 200.0}
    assert states == ["generating", "completed"]


def test_result_urls_last_as_long_as_each_models_vendor_says() -> None:
    """A model whose vendor signs its URLs for a day keeps them past the default lifetime that ends the others'."""
    assert (MODELS[DAY_LONG].url_ttl_seconds, MODELS[TEN_MINUTES].url_ttl_seconds) == (86400, 600)
    assert MODELS[WAN25].url_ttl_seconds is None, "its pages state no lifetime: the emulator's default applies"
    with emulator(url_ttl_seconds=0.5) as emu:
        api = httpx.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {emu.api_key}"}, timeout=10)
        with api:
            image = _data_image()
            ids = [
                api.post("/v2/video/generations", json={"model": m, "prompt": "Rain", "image_url": image}).json()["id"]
                for m in (DAY_LONG, WAN25)
            ]
            urls = [_video_url(api, generation_id) for generation_id in ids]
            time.sleep(0.7)
            codes = [httpx.get(url, timeout=10).status_code for url in urls]
    assert codes == [200, 403]


def test_asked_frames_read_every_spelling_the_catalogue_uses() -> None:
    """Resolution classes in either case, sizes, names and aspect ratios give the frame the emulator renders."""
    assert asked_frame("720p", "4:3") == (720, "4:3")
    assert asked_frame("1080P", None) == (1080, None)
    assert asked_frame("1280x720", None) == (720, "1280:720")
    assert asked_frame("1280x720", "16:9") == (720, "16:9")
    assert asked_frame("hd", "21:9") == (720, "21:9")
    assert asked_frame("2K", "adaptive") == (1440, None)
    assert asked_frame(None, "auto") == (None, None)
    assert asked_frame("768P", "9:16") == (768, "9:16")


def test_an_unpriced_model_is_price_unknown_not_a_placeholder() -> None:
    """With no table price and no live quote an estimate says `unknown` and costs nothing it could not know."""
    unknown = prices.estimate(UNPRICED, {"resolution": "1080p", "duration": 5})
    assert (unknown.source, unknown.known, unknown.credits, unknown.usd) == ("unknown", False, 0.0, 0.0)
    live = prices.parse_live({"data": [{"id": UNPRICED, "aliases": [], "pricing": _variants({"1080p": 0.5})}]})
    quoted = prices.estimate(UNPRICED, {"resolution": "1080p", "duration": 4}, live=live)
    assert (quoted.source, quoted.usd, quoted.credits) == ("live", 2.0, 2.0 * prices.CREDITS_PER_USD)


def test_estimate_uses_live_prices_when_the_api_answers_and_counts_unknown_prices_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`i2v estimate` prices from the emulator's `/v1/models`, says so, and keeps unpriced models out of totals."""
    csv = tmp_path / "rows.csv"
    csv.write_text(
        "image_url,prompt,model,resolution,duration\n"
        f"https://example.com/a.png,Waves,{WAN25},720p,5\n"
        f"https://example.com/b.png,Waves,{UNPRICED},720p,5\n"
    )
    with emulator() as emu:
        monkeypatch.setenv("AIMLAPI_BASE_URL", emu.base_url)
        assert main(["estimate", str(csv), "--json"]) == 0
        document = json.loads(capsys.readouterr().out)
        assert main(["estimate", str(csv)]) == 0
        text = capsys.readouterr().out
        requests = emu.stats()["catalogue_requests"]
    assert requests == 2
    lines = {line["model"]: line for line in document["lines"]}
    assert lines[WAN25]["source"] == "live"
    assert lines[UNPRICED]["source"] == "unknown"
    expected = prices.estimate(WAN25, {"resolution": "720p", "duration": 5})
    assert lines[WAN25]["credits"] == pytest.approx(expected.credits, rel=1e-4), "the live quote is the table's"
    assert document["credits"] == lines[WAN25]["credits"]
    assert (document["jobs"], document["unpriced_jobs"]) == (2, 1)
    assert document["live_prices"]["used"] is True
    assert "price unknown" in text
    assert f"prices: live, from {emu.base_url}/v1/models?include=pricing" in text
    assert "*" not in text.split("total")[0], "no placeholder rate marked with a star"


def test_estimate_says_when_the_live_catalogue_cannot_be_had(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An API that does not answer leaves the table's prices, and the output says live prices were not used."""
    csv = tmp_path / "rows.csv"
    csv.write_text(f"image_url,prompt,model,resolution,duration\nhttps://example.com/a.png,Waves,{WAN25},720p,5\n")
    monkeypatch.setenv("AIMLAPI_BASE_URL", "http://127.0.0.1:9")
    assert main(["estimate", str(csv)]) == 0
    text = capsys.readouterr().out
    assert "live prices: not used (ConnectError" in text
    assert "prices: i2v/api/catalogue/prices.json" in text


def _variants(rates: dict[str, float]) -> dict[str, Any]:
    return {
        "kind": "variants",
        "currency": "USD",
        "dimensions": ["resolution"],
        "variants": [{"when": {"resolution": r}, "price": p, "unit": "second", "per": 1} for r, p in rates.items()],
    }


def _data_image() -> str:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 18), (10, 90, 200)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _video_url(api: httpx.Client, generation_id: str) -> str:
    """The video URL of a job once it completes."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = api.get("/v2/video/generations", params={"generation_id": generation_id}).json()
        if answer["status"] == "completed":
            return str(answer["video"]["url"])
        time.sleep(0.05)
    raise AssertionError(f"job {generation_id} did not complete")
