"""The AI/ML API emulator, over real HTTP on 127.0.0.1.

Every test here starts its own emulator (uvicorn in a background thread) and talks to
it with httpx, or, for the vendor's own sample client, with ``requests`` in a
subprocess. Jobs take a fraction of a second so the whole file stays quick.
"""

from __future__ import annotations

import argparse
import base64
import io
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from PIL import Image

from i2v.api.models import LEGACY_PATH, MODELS, UNIVERSAL_PATH
from i2v.emulator import EmulatorConfig, Fault, cli, running_emulator
from i2v.emulator.pricing import price
from i2v.emulator.render import render_video
from i2v.emulator.validation import validate_create
from tests.loopback import serving
from tests.vendor import shared_dir

WAN25 = "alibaba/wan2.5-i2v-preview"
WAN22 = "alibaba/wan2.2-i2v-plus"
RETRYABLE = (429, 500, 502, 503)
#: Every status that ends a job.
TERMINAL = ("completed", "error", "failed", "cancelled", "expired")


def _body(**fields: Any) -> dict[str, Any]:
    """A valid wan2.5 create body; a field set to None is left out."""
    body: dict[str, Any] = {
        "model": WAN25,
        "prompt": "Waves roll onto the beach at sunset",
        "image_url": "https://example.com/beach.png",
        "duration": 5,
    }
    body.update(fields)
    return {name: value for name, value in body.items() if value is not None}


@dataclass
class Emu:
    """A running emulator and a client that sends its key."""

    url: str
    client: httpx.Client

    def stats(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}/_emulator/stats", timeout=5)
        answer.raise_for_status()
        data: dict[str, Any] = answer.json()
        return data

    def post(self, body: Any, path: str = UNIVERSAL_PATH) -> httpx.Response:
        return self.client.post(path, json=body)

    def fetch(self, generation_id: str, path: str = UNIVERSAL_PATH) -> httpx.Response:
        return self.client.get(path, params={"generation_id": generation_id})

    def status(self, generation_id: str) -> str:
        status: str = self.fetch(generation_id).json()["status"]
        return status

    def create(self, body: dict[str, Any], path: str = UNIVERSAL_PATH) -> str:
        answer = self.post(body, path)
        assert answer.status_code == 201, answer.text
        assert answer.json()["status"] == "queued"
        generation_id: str = answer.json()["id"]
        return generation_id

    def wait(
        self, generation_id: str, path: str = UNIVERSAL_PATH, *, retry_errors: bool = False
    ) -> tuple[dict[str, Any], list[str]]:
        """Poll until the job is terminal: the last answer and every status seen."""
        seen: list[str] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            answer = self.fetch(generation_id, path)
            if retry_errors and answer.status_code in RETRYABLE:
                continue
            assert answer.status_code == 200, answer.text
            data: dict[str, Any] = answer.json()
            seen.append(data["status"])
            if data["status"] in TERMINAL:
                return data, seen
            time.sleep(0.03)
        raise AssertionError(f"job {generation_id} unfinished after 20 s; saw {seen[-3:]}")


Launch = Callable[..., Emu]


@pytest.fixture
def launch(start_emulator: Any, emulator_auth: dict[str, str]) -> Iterator[Launch]:
    """Start emulators with config overrides, each with a client that sends the key."""
    with ExitStack() as stack:

        def start(**config: Any) -> Emu:
            url: str = start_emulator(**config)
            client = httpx.Client(base_url=url, headers=emulator_auth, timeout=10)
            return Emu(url, stack.enter_context(client))

        yield start


@pytest.fixture
def emu(launch: Launch) -> Emu:
    """An emulator with quick jobs and otherwise default behaviour."""
    return launch()


@pytest.fixture(scope="module")
def refusing(emulator_auth: dict[str, str]) -> Iterator[Emu]:
    """One emulator shared by the tests whose requests are all refused (no job is ever made)."""
    key = emulator_auth["Authorization"].removeprefix("Bearer ")
    with running_emulator(EmulatorConfig(api_key=key)) as url:
        with httpx.Client(base_url=url, headers=emulator_auth, timeout=10) as client:
            emu = Emu(url, client)
            yield emu
        assert emu.stats()["jobs_total"] == 0


def _decode(data: bytes) -> dict[str, Any]:
    """What PyAV finds in an MP4: codec, pixel format, size, frame count and rate."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        rate = stream.average_rate
        return {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "frames": len(frames),
            "fps": rate,
            "duration": Fraction(len(frames)) / rate if rate else None,
            "first_frame_mean": frames[0].reshape(-1, 3).mean(axis=0),
        }


def _download(url: str) -> dict[str, Any]:
    answer = httpx.get(url)  # no key: the URL is its own credential
    assert answer.status_code == 200, answer.text
    return _decode(answer.content)


def _data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _vendor_error(answer: httpx.Response, status: int, path: str) -> dict[str, Any]:
    """Check the vendor's error shape and return the body."""
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert body["statusCode"] == status
    assert body["path"] == path
    assert isinstance(body["message"], str)
    assert body["message"]
    uuid.UUID(body["requestId"])
    datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    return body


@pytest.fixture
def image_server(tmp_path: Path) -> Iterator[str]:
    """A plain file server on 127.0.0.1, which the emulator may fetch images from."""
    Image.new("RGB", (120, 120), (30, 200, 60)).save(tmp_path / "square.png")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            target = tmp_path / self.path.lstrip("/")
            if not target.is_file():
                self.send_error(404)
                return
            data = target.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        yield url


# --- authentication and validation ----------------------------------------------------


@pytest.mark.parametrize("path", [UNIVERSAL_PATH, LEGACY_PATH])
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Basic c2stZW11bGF0b3I="}],
    ids=["missing", "wrong-key", "not-bearer"],
)
def test_api_routes_require_the_bearer_key(
    refusing: Emu,
    path: str,
    headers: dict[str, str],
) -> None:
    """Create and fetch answer 401 with the vendor's body before looking at anything else."""
    create = httpx.post(f"{refusing.url}{path}", json=_body(), headers=headers)
    body = _vendor_error(create, 401, path)
    assert body["message"].startswith("This request requires a valid API key.")
    fetch = httpx.get(f"{refusing.url}{path}", params={"generation_id": "x"}, headers=headers)
    _vendor_error(fetch, 401, path)


@pytest.mark.parametrize(
    ("path", "body", "field", "detail"),
    [
        (UNIVERSAL_PATH, _body(duration=7), "duration", "Expected 5 | 10, received 7"),
        (UNIVERSAL_PATH, _body(prompt="x" * 801), "prompt", "Expected at most 800, received 801"),
        (UNIVERSAL_PATH, _body(prompt=""), "prompt", "Expected at least 1, received 0"),
        (UNIVERSAL_PATH, _body(image_url=None), "image_url", "Expected string, received undefined"),
        (UNIVERSAL_PATH, _body(image_url="ftp://h/a.png"), "image_url", "Invalid url"),
        (
            UNIVERSAL_PATH,
            _body(resolution="4k"),
            "resolution",
            "Expected '480p' | '720p' | '1080p', received '4k'",
        ),
        (UNIVERSAL_PATH, _body(duration="5"), "duration", "Expected number, received string"),
        (UNIVERSAL_PATH, _body(seed=1.5), "seed", "Expected integer, received float"),
        (UNIVERSAL_PATH, _body(enhance_prompt="yes"), "enhance_prompt", "received string"),
        (UNIVERSAL_PATH, _body(colour="blue"), "colour", "Unrecognized key 'colour'"),
        (LEGACY_PATH, _body(aspect_ratio="1:1"), "aspect_ratio", "Unrecognized key"),
        (LEGACY_PATH, _body(enhance_prompt=True), "enhance_prompt", "Unrecognized key"),
        (LEGACY_PATH, _body(duration="7"), "duration", "Expected 5 | 10, received 7"),
        (
            LEGACY_PATH,
            _body(model="alibaba/wan-2-6-i2v"),
            "model",
            "received 'alibaba/wan-2-6-i2v'",
        ),
        (
            UNIVERSAL_PATH,
            _body(model="alibaba/wan2.6-i2v"),
            "model",
            "received 'alibaba/wan2.6-i2v'",
        ),
    ],
    ids=[
        "bad-enum",
        "prompt-too-long",
        "prompt-empty",
        "missing-image",
        "image-not-a-url",
        "bad-resolution",
        "universal-is-strict",
        "seed-not-integer",
        "bool-as-string",
        "unknown-field",
        "aspect-ratio-not-on-legacy",
        "wrong-expansion-name",
        "legacy-coerces-then-checks",
        "model-not-on-legacy",
        "model-alias-not-an-api-id",
    ],
)
def test_body_validation_names_the_field_with_expected_and_received(
    refusing: Emu, path: str, body: dict[str, Any], field: str, detail: str
) -> None:
    """A bad body is a 400 'Body validation error!' naming the field, Expected and Received."""
    error = _vendor_error(refusing.post(body, path), 400, path)
    assert error["message"].startswith("Body validation error! ")
    assert f"{field}: " in error["message"]
    assert detail in error["message"]
    (issue,) = [issue for issue in error["errors"] if issue["path"] == [field]]
    assert detail in issue["message"]
    assert issue["expected"]
    assert issue["received"]


def test_every_issue_is_reported_at_once(refusing: Emu) -> None:
    """Several problems give one 400 listing each of them, not just the first."""
    body = _body(prompt="x" * 900, duration=3, image_url=None, extra=1)
    error = _vendor_error(refusing.post(body), 400, UNIVERSAL_PATH)
    fields = sorted(issue["path"][0] for issue in error["errors"])
    assert fields == ["duration", "extra", "image_url", "prompt"]


def test_non_json_body_is_a_validation_error(refusing: Emu) -> None:
    """A body that is not JSON is rejected as a body validation error, not a server error."""
    headers = {"Content-Type": "application/json"}
    answer = refusing.client.post(UNIVERSAL_PATH, content=b"{not json", headers=headers)
    error = _vendor_error(answer, 400, UNIVERSAL_PATH)
    assert error["message"].startswith("Body validation error!")


def test_legacy_route_accepts_numeric_strings_the_universal_one_refuses(emu: Emu) -> None:
    """The sample's "duration": "5" is fine on the legacy path, a 400 on the universal one."""
    assert emu.post(_body(model=WAN22, duration="5"), LEGACY_PATH).status_code == 201
    assert emu.post(_body(duration="10"), LEGACY_PATH).status_code == 201
    assert emu.post(_body(duration="5")).status_code == 400


def test_minimal_body_is_valid_on_every_catalogued_route() -> None:
    """Model, prompt, image and the required fields are enough everywhere the catalogue serves a model."""
    for spec in MODELS.values():
        for route in spec.routes.values():
            if not spec.supported:
                continue
            image = "https://ex.com/c.png"
            body: dict[str, object] = {
                "model": spec.api_id,
                route.image_field: [image] if route.image_is_list else image,
            }
            if route.takes_prompt:
                body["prompt"] = "a cat"
            for name, param in route.params.items():
                if param.required:
                    body[name] = (
                        image if param.type == "image" else param.choices[0] if param.choices else param.default
                    )
            assert validate_create(route.path, body) == [], (spec.name, route.name)


def test_fetch_needs_a_known_generation_id(refusing: Emu) -> None:
    """No generation_id is a 400 query validation error; an unknown one a 404, on both paths."""
    for path in (UNIVERSAL_PATH, LEGACY_PATH):
        missing = _vendor_error(refusing.client.get(path), 400, path)
        assert missing["message"].startswith("Query validation error!")
        assert "generation_id" in missing["message"]
        unknown = _vendor_error(refusing.fetch("nope", path), 404, path)
        assert "nope" in unknown["message"]


# --- the life of a job ----------------------------------------------------------------


def test_job_goes_queued_generating_completed_with_a_real_video(launch: Launch) -> None:
    """A job generates, completes, and its URL serves an H.264 MP4 of the asked shape."""
    emu = launch(generation_seconds=0.6)
    generation_id = emu.create(_body(duration=5, aspect_ratio="9:16", resolution="480p"))
    done, seen = emu.wait(generation_id)
    legacy = emu.fetch(generation_id, LEGACY_PATH).json()

    assert "generating" in seen
    assert seen[-1] == "completed"
    assert done["error"] is None
    assert done["meta"] == {"usage": {"credits_used": price("480p", 5, model=WAN25)}}
    url = done["video"]["url"]
    assert url.startswith(f"{emu.url}/_emulator/files/")
    assert url.endswith(".mp4")

    # The same job in the older schema of the legacy path.
    assert legacy["status"] == "completed"
    assert legacy["video"] == {"url": url, "duration": 5}
    assert legacy["duration"] == 5
    assert legacy["meta"] == {"usage": {"tokens_used": price("480p", 5, model=WAN25)}}

    download = httpx.get(url)
    assert download.headers["content-type"] == "video/mp4"
    assert int(download.headers["content-length"]) == len(download.content)
    video = _decode(download.content)
    assert video["codec"] == "h264"
    assert video["pix_fmt"] == "yuv420p"
    assert video["duration"] == 5
    assert video["frames"] == 5 * video["fps"]
    assert video["width"] % 2 == 0
    assert video["height"] % 2 == 0
    assert video["height"] / video["width"] == pytest.approx(16 / 9, rel=0.02)


def test_data_uri_image_sets_orientation_and_content(launch: Launch) -> None:
    """Without an aspect_ratio field the video follows the image: portrait in, 9:16 out."""
    emu = launch(fps=4)
    image = _data_uri(Image.new("RGB", (90, 160), (220, 40, 40)))
    generation_id = emu.create(_body(image_url=image, duration="10"), LEGACY_PATH)
    done, _ = emu.wait(generation_id, LEGACY_PATH)
    video = _download(done["video"]["url"])
    assert (video["frames"], video["fps"], video["duration"]) == (40, 4, 10)
    assert video["height"] / video["width"] == pytest.approx(16 / 9, rel=0.02)
    red, green, blue = video["first_frame_mean"]
    assert red > 180
    assert max(green, blue) < 80


def test_loopback_image_is_fetched_and_a_failed_fetch_fails_the_job(
    emu: Emu,
    image_server: str,
) -> None:
    """Images on 127.0.0.1 are downloaded (square in, 1:1 out); a 404 there fails the job."""
    square = _body(model=WAN22, image_url=f"{image_server}/square.png", duration=None)
    good = emu.create(square)
    bad = emu.create(_body(image_url=f"{image_server}/missing.png"))
    done, _ = emu.wait(good)
    failed, _ = emu.wait(bad)
    video = _download(done["video"]["url"])
    assert video["width"] == video["height"]
    assert video["duration"] == 5  # wan2.2 has no duration field: its clips are 5 s
    red, green, blue = video["first_frame_mean"]
    assert green > 150
    assert max(red, blue) < 110
    assert failed["status"] == "error"
    assert failed["video"] is None
    assert failed["error"]["name"] == "ImageDownloadError"
    assert "404" in failed["error"]["message"]


def test_models_with_sound_deliver_an_audio_track(emu: Emu) -> None:
    """wan2.6 generates audio by default: its MP4 has an AAC track as long as the video."""
    with_sound = emu.create(_body(model="alibaba/wan-2-6-i2v"))
    silent = emu.create(_body(model="alibaba/wan-2-6-i2v", generate_audio=False))
    urls = [emu.wait(generation_id)[0]["video"]["url"] for generation_id in (with_sound, silent)]
    kinds = []
    for url in urls:
        with av.open(io.BytesIO(httpx.get(url).content), mode="r") as container:
            streams = container.streams
            kinds.append(sorted(stream.type for stream in streams))
            for stream in streams:
                assert stream.duration is not None
                assert stream.time_base is not None
                assert float(stream.duration * stream.time_base) == pytest.approx(5.0, abs=0.05)
    assert kinds == [["audio", "video"], ["video"]]


def test_undecodable_data_uri_fails_the_job(emu: Emu) -> None:
    """A well-formed data URI whose bytes are no image passes validation, then the job errors."""
    not_an_image = "data:image/png;base64," + base64.b64encode(b"just some text").decode()
    failed, _ = emu.wait(emu.create(_body(image_url=not_an_image)))
    assert failed["status"] == "error"
    assert failed["error"]["name"] == "InvalidImageError"


def test_blocked_prompt_ends_in_a_moderation_error(emu: Emu) -> None:
    """A blocked whole word (any case) fails the job in moderation; a longer word does not."""
    blocked = emu.create(_body(prompt="A FORBIDDEN dance in the rain"))
    allowed = emu.create(_body(prompt="The forbiddenness of it all"))
    failed, _ = emu.wait(blocked)
    passed, _ = emu.wait(allowed)
    assert failed["status"] == "error"
    assert failed["video"] is None
    assert failed["error"]["name"] == "ContentModerationError"
    assert failed["error"]["message"]
    assert passed["status"] == "completed"


def test_download_url_expires(launch: Launch) -> None:
    """A download URL works right after completion and answers 403 once its time is up."""
    emu = launch(url_ttl_seconds=0.6)
    done, _ = emu.wait(emu.create(_body()))
    url = done["video"]["url"]
    assert httpx.get(url).status_code == 200
    time.sleep(0.7)
    expired = httpx.get(url)
    assert expired.status_code == 403
    assert "expired" in expired.text
    assert httpx.get(f"{emu.url}/_emulator/files/no-such-token.mp4").status_code == 404


# --- capacity and limits --------------------------------------------------------------


def test_no_more_than_max_concurrent_jobs_generate(launch: Launch) -> None:
    """Six jobs on two slots: never more than two generating, and all six complete."""
    emu = launch(max_concurrent=2, generation_seconds=0.25, short_side=64, fps=4)
    ids = [emu.create(_body(prompt=f"Job number {n}")) for n in range(6)]
    most = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        jobs = emu.stats()["jobs"]
        most = max(most, jobs["generating"])
        assert jobs["generating"] <= 2
        if jobs["completed"] == 6:
            break
        time.sleep(0.02)
    assert {emu.status(generation_id) for generation_id in ids} == {"completed"}
    assert most == 2
    assert emu.stats()["max_generating_seen"] == 2


def test_queued_jobs_start_in_arrival_order(launch: Launch) -> None:
    """With one slot, the second job starts when the first ends while the third still waits."""
    emu = launch(max_concurrent=1, generation_seconds=0.6, generation_jitter=0.0)
    first, second, third = (emu.create(_body(prompt=f"Job {n}")) for n in range(3))
    assert [emu.status(first), emu.status(second), emu.status(third)] == [
        "generating",
        "queued",
        "queued",
    ]
    emu.wait(first)
    assert [emu.status(second), emu.status(third)] == ["generating", "queued"]


def test_max_pending_answers_429_with_retry_after(launch: Launch) -> None:
    """Past max_pending queued+generating jobs a create is a 429 with Retry-After, and no job."""
    emu = launch(max_pending=2, max_concurrent=1, generation_seconds=2.0)
    emu.create(_body(prompt="one"))
    emu.create(_body(prompt="two"))
    refused = emu.post(_body(prompt="three"))
    assert "concurrent" in _vendor_error(refused, 429, UNIVERSAL_PATH)["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    stats = emu.stats()
    assert stats["creates"] == 3
    assert stats["jobs_total"] == 2


def test_request_rate_limit_answers_429_then_recovers(launch: Launch) -> None:
    """At one request per second a second immediate request is a 429; Retry-After is enough."""
    emu = launch(requests_per_second=1.0)
    assert emu.fetch("a").status_code == 404
    limited = emu.fetch("a")
    _vendor_error(limited, 429, UNIVERSAL_PATH)
    wait = int(limited.headers["Retry-After"])
    assert wait >= 1
    time.sleep(wait)
    assert emu.fetch("a").status_code == 404


def test_out_of_credits_answers_403(launch: Launch) -> None:
    """A create the balance cannot pay is a 403 with the vendor's message; the balance is kept."""
    cost = price("480p", 5, model=WAN25)
    emu = launch(credits=cost * 1.5)
    emu.create(_body(resolution="480p"))
    refused = _vendor_error(emu.post(_body(resolution="480p")), 403, UNIVERSAL_PATH)
    assert refused["message"].startswith("You've run out of credits.")
    stats = emu.stats()
    assert stats["credits_used"] == cost
    assert stats["credits_remaining"] == pytest.approx(cost * 0.5)


# --- scripted and random faults --------------------------------------------------------


def test_scripted_faults_hit_the_next_matching_requests(launch: Launch) -> None:
    """Queued faults answer the next create, fetches and download, in order, then stop."""
    emu = launch(faults=(Fault("download", 500),))
    faults = [
        {"on": "create", "status": 429, "retry_after": 2},
        {"on": "fetch", "status": 503, "count": 2},
    ]
    queued = httpx.post(f"{emu.url}/_emulator/faults", json=faults)
    assert queued.status_code == 200
    assert queued.json()["pending"] == 4
    wrong = [{"on": "nowhere", "status": 500}]
    assert httpx.post(f"{emu.url}/_emulator/faults", json=wrong).status_code == 400

    # An unauthenticated request is refused first and does not use up a fault.
    assert httpx.post(f"{emu.url}{UNIVERSAL_PATH}", json=_body()).status_code == 401
    limited = emu.post(_body())
    _vendor_error(limited, 429, UNIVERSAL_PATH)
    assert limited.headers["Retry-After"] == "2"
    assert emu.stats()["jobs_total"] == 0
    generation_id = emu.create(_body())
    for _ in range(2):
        _vendor_error(emu.fetch(generation_id), 503, UNIVERSAL_PATH)
    done, _ = emu.wait(generation_id)
    broken = httpx.get(done["video"]["url"])
    assert broken.status_code == 500
    assert "<Error>" in broken.text
    assert httpx.get(done["video"]["url"]).status_code == 200
    assert emu.stats()["faults_pending"] == 0


def test_lost_create_response_still_creates_and_bills_the_job(launch: Launch) -> None:
    """after_create: the answer is a 502, yet the job exists and is billed; a resend pays twice."""
    emu = launch(faults=(Fault("create", 502, after_create=True),))
    # A request that fails validation creates nothing, so the fault waits for a real job.
    assert emu.post(_body(duration=7)).status_code == 400
    _vendor_error(emu.post(_body(resolution="720p")), 502, UNIVERSAL_PATH)
    stats = emu.stats()
    assert stats["jobs_total"] == 1
    assert stats["lost_responses"] == 1
    assert stats["credits_used"] == price("720p", 5, model=WAN25)
    # The emulator cannot tell a resend from a new request: a second job, a second bill.
    emu.create(_body(resolution="720p"))
    stats = emu.stats()
    assert stats["jobs_total"] == 2
    assert stats["credits_used"] == 2 * price("720p", 5, model=WAN25)


Outcomes = dict[tuple[int, int], tuple[int, str | None, str | None]]


def test_random_injection_is_deterministic_under_a_seed(launch: Launch) -> None:
    """Same seed and bodies: same answers, ids and job outcomes, whatever the request order."""
    rates = {
        "rate_limit_rate": 0.15,
        "server_error_rate": 0.15,
        "lost_response_rate": 0.15,
        "job_error_rate": 0.3,
        "generation_seconds": 0.1,
        "max_concurrent": 16,
        "short_side": 32,
        "fps": 2,
    }
    bodies = [_body(prompt=f"Scene {n}") for n in range(8)]
    # Every body twice: a resend of the same body is its own, equally fixed, draw.
    forward = [(n, attempt) for attempt in range(2) for n in range(len(bodies))]
    # Reversed within each round, so that each body's first send still precedes its second.
    backward = [(n, attempt) for attempt in range(2) for n in reversed(range(len(bodies)))]

    def run(seed: int, order: list[tuple[int, int]]) -> Outcomes:
        emu = launch(seed=seed, **rates)
        outcomes: Outcomes = {}
        for key in order:
            answer = emu.post(bodies[key[0]])
            generation_id = answer.json()["id"] if answer.status_code == 201 else None
            outcomes[key] = (answer.status_code, generation_id, None)
        for key, (status, generation_id, _) in outcomes.items():
            if generation_id is not None:
                final, _ = emu.wait(generation_id, retry_errors=True)
                outcomes[key] = (status, generation_id, final["status"])
        return outcomes

    first = run(7, forward)
    assert run(7, backward) == first
    assert {status for status, _, _ in first.values()} >= {201, 429}
    assert {final for _, _, final in first.values()} >= {"completed", "error"}
    ids = [generation_id for _, generation_id, _ in first.values() if generation_id]
    assert len(ids) == len(set(ids))
    assert all(uuid.UUID(generation_id).version == 4 for generation_id in ids)
    assert run(8, forward) != first


# --- counters -------------------------------------------------------------------------


def test_stats_count_requests_jobs_and_answers(emu: Emu) -> None:
    """Stats count creates, fetches, downloads, jobs by current status, and answers by status."""
    before = emu.stats()
    assert before["first_create_at"] is None
    assert before["last_download_at"] is None
    assert httpx.post(f"{emu.url}{UNIVERSAL_PATH}", json=_body()).status_code == 401
    generation_id = emu.create(_body())
    assert emu.post(_body(duration=1)).status_code == 400
    done, seen = emu.wait(generation_id)
    assert httpx.get(done["video"]["url"]).status_code == 200

    stats = emu.stats()
    assert (stats["creates"], stats["fetches"], stats["downloads"]) == (3, len(seen), 1)
    assert stats["jobs"] == {
        "queued": 0,
        "generating": 0,
        "completed": 1,
        "error": 0,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
    }
    assert stats["responses"] == {"200": len(seen) + 1, "201": 1, "400": 1, "401": 1}
    # Nothing injected: every fault kind is listed, at zero.
    assert set(stats["faults"]) >= {"status", "timeout", "reset", "slow", "truncate", "terminal_status"}
    assert set(stats["faults"].values()) == {0}
    assert stats["faults_scripted"] == stats["faults"]
    assert (stats["lost_responses"], stats["client_hangups"]) == (0, 0)
    assert stats["first_create_at"] <= stats["last_download_at"] <= time.time()
    assert stats["credits_used"] == done["meta"]["usage"]["credits_used"]
    assert stats["bytes_served"] > 0


# --- rendering and the command line ----------------------------------------------------


@pytest.mark.parametrize(
    ("aspect_ratio", "size"),
    [("16:9", (256, 144)), ("9:16", (144, 256)), ("1:1", (144, 144))],
)
def test_render_has_exact_frames_and_shape(
    tmp_path: Path,
    aspect_ratio: str,
    size: tuple[int, int],
) -> None:
    """The clip has seconds * fps frames of the asked shape; a seed always draws the same."""
    outputs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = tmp_path / f"{name}.mp4"
        render_video(
            None,
            seconds=3,
            aspect_ratio=aspect_ratio,
            short_side=144,
            fps=8,
            seed=seed,
            out=out,
        )
        outputs.append(out.read_bytes())
    video = _decode(outputs[0])
    assert (video["width"], video["height"]) == size
    assert (video["frames"], video["duration"]) == (24, 3)
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.mp4", "b.mp4", "c.mp4"]


def test_cli_refuses_to_start_without_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --api-key or AIMLAPI_API_KEY the command prints one line and exits 2."""
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.run(parser.parse_args(["--port", "0"])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "AIMLAPI_API_KEY" in err


def test_cli_serves_until_interrupted(emulator_auth: dict[str, str]) -> None:
    """The command announces its URL, answers with the given key, and exits 0 on Ctrl-C."""
    key = emulator_auth["Authorization"].removeprefix("Bearer ")
    script = (
        "import argparse, sys\n"
        "from i2v.emulator import cli\n"
        "parser = argparse.ArgumentParser()\n"
        "cli.add_arguments(parser)\n"
        "sys.exit(cli.run(parser.parse_args(sys.argv[1:])))\n"
    )
    command = [sys.executable, "-c", script, "--port", "0", "--api-key", key]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            found = re.search(r"serving on (http://127\.0\.0\.1:\d+)", line)
            assert found, line
            answer = httpx.get(f"{found.group(1)}{UNIVERSAL_PATH}", headers=emulator_auth)
            _vendor_error(answer, 400, UNIVERSAL_PATH)
        finally:
            server.send_signal(signal.SIGINT)
            assert server.wait(timeout=15) == 0


# --- the vendor's own sample client -----------------------------------------------------


def test_vendor_sample_client_runs_unchanged_against_the_emulator(
    launch: Launch, emulator_auth: dict[str, str], tmp_path: Path
) -> None:
    """The vendor page's Python sample, only its key and base URL changed, gets a video."""
    emu = launch(generation_seconds=0.5)
    seed_dir = shared_dir() / "seed"
    pages = sorted(seed_dir.glob("*.txt"))
    assert pages, f"no vendor documentation page (*.txt) in {seed_dir} (set I2V_SHARED_DIR)"
    page = pages[0].read_text(encoding="utf-8")
    sample = re.search(r"```python\n(.*?)```", page, re.DOTALL)
    assert sample, f"no ```python block in {pages[0]}"
    key = emulator_auth["Authorization"].removeprefix("Bearer ")
    code, keys = re.subn(r"^api_key = .*$", f"api_key = {key!r}", sample.group(1), flags=re.M)
    code, bases = re.subn(r"^base_url = .*$", f"base_url = '{emu.url}/v2'", code, flags=re.M)
    assert (keys, bases) == (1, 1), "the sample no longer sets api_key and base_url at top level"
    script = tmp_path / "sample.py"
    script.write_text(code, encoding="utf-8")

    command = [sys.executable, str(script)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    assert run.returncode == 0, run.stderr
    assert "Status: completed" in run.stdout, run.stdout
    found = re.search(r"'url': '([^']+)'", run.stdout)
    assert found, run.stdout
    video = _download(found.group(1))
    assert video["codec"] == "h264"
    assert video["duration"] == 5
    stats = emu.stats()
    assert stats["creates"] == 1
    assert stats["jobs"]["completed"] == 1


def test_off_spec_jobs_make_a_shorter_video_of_the_other_orientation(launch: Launch) -> None:
    """With ``off_spec_rate=1`` every video has half the asked duration and the other orientation, billed as asked."""
    emu = launch(off_spec_rate=1.0, short_side=32, fps=4)
    for aspect_ratio, tall in (("16:9", True), ("9:16", False), ("1:1", False)):
        done, _ = emu.wait(emu.create(_body(duration=10, aspect_ratio=aspect_ratio, resolution="480p")))
        assert done["meta"] == {"usage": {"credits_used": price("480p", 10, model=WAN25)}}
        video = _download(done["video"]["url"])
        assert video["duration"] == 5
        assert (video["height"] > video["width"]) is tall
        assert video["width"] != video["height"]
    assert emu.stats()["faults"]["off_spec"] == 3


def test_short_side_asked_renders_at_the_asked_resolution(launch: Launch) -> None:
    """``short_side=None`` gives the frame the asked resolution's short side, in the asked shape."""
    emu = launch(short_side=None, fps=1)
    for resolution, aspect_ratio, size in (("480p", "16:9", (854, 480)), ("720p", "1:1", (720, 720))):
        done, _ = emu.wait(emu.create(_body(duration=5, aspect_ratio=aspect_ratio, resolution=resolution)))
        video = _download(done["video"]["url"])
        assert (video["width"], video["height"]) == size
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert parser.parse_args(["--short-side", "asked"]).short_side is None
    assert parser.parse_args(["--short-side", "96"]).short_side == 96
