"""Request tracing and ``GET /v2/logs`` on the emulator, over real HTTP on 127.0.0.1.

The vendor's contract: ``capabilities/request-tracing-and-cost.md`` (the headers on
every inference answer) and ``api-references/service-endpoints/usage-logs.md`` with
``logs-v2.json`` (one row per request, failed ones at zero cost, filled by an analytics
pipeline that lags), sharing the window and key rules of ``api-key-usage.md``.
"""

from __future__ import annotations

import argparse
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from i2v.api.models import LEGACY_PATH, UNIVERSAL_PATH
from i2v.emulator import EmulatorConfig, Fault, cli
from i2v.emulator.limits import SlidingWindow
from i2v.emulator.pricing import price
from tests.test_emulator import WAN22, WAN25, Emu, Launch, _body, _vendor_error

LOGS = "/v2/logs"
TRACING = {"x-inference-id", "x-client-request-id", "x-aimlapi-credits-used", "x-aimlapi-usd-spent"}
CREDITS_PER_USD = 2_000_000
CREATED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
ROW_FIELDS = {
    "created",
    "status",
    "origin",
    "model",
    "cost",
    "tokens",
    "request_id",
    "inference_id",
    "client_request_id",
}


@pytest.fixture
def launch(start_emulator: Any, emulator_auth: dict[str, str]) -> Iterator[Launch]:
    """Start emulators with config overrides (rows listed at once unless told), each with a keyed client."""
    with ExitStack() as stack:

        def start(**config: Any) -> Emu:
            url: str = start_emulator(**{"logs_delay_seconds": 0, **config})
            client = httpx.Client(base_url=url, headers=emulator_auth, timeout=10)
            return Emu(url, stack.enter_context(client))

        yield start


def _logs(emu: Emu, *params: tuple[str, str], period: str | None = "1h") -> httpx.Response:
    """``GET /v2/logs`` with ``params`` (repeatable) and, unless None, ``period``."""
    query = [*(() if period is None else (("period", period),)), *params]
    return emu.client.get(LOGS, params=query)


def _rows(emu: Emu, *params: tuple[str, str], period: str | None = "1h") -> list[dict[str, Any]]:
    answer = _logs(emu, *params, period=period)
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()["data"]
    return rows


def _traced(emu: Emu, method: str, path: str, client_id: str | None, **kwargs: Any) -> httpx.Response:
    headers = {} if client_id is None else {"X-Client-Request-Id": client_id}
    return emu.client.request(method, path, headers=headers, **kwargs)


def _credits(answer: httpx.Response) -> int:
    """The cost headers of an answer, checked to agree with each other."""
    credits = int(answer.headers["x-aimlapi-credits-used"])
    assert float(answer.headers["x-aimlapi-usd-spent"]) == pytest.approx(credits / CREDITS_PER_USD)
    return credits


def _is_issued_shape(value: str) -> bool:
    parsed = uuid.UUID(value)
    return str(parsed) == value and parsed.version == 4


def _wait_for(emu: Emu, *params: tuple[str, str], count: int, seconds: float = 10.0) -> list[dict[str, Any]]:
    """Poll /v2/logs until ``count`` rows match (the analytics pipeline lags)."""
    deadline = time.monotonic() + seconds
    while True:
        rows = _rows(emu, *params)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


# --- tracing headers --------------------------------------------------------------------


@pytest.mark.parametrize("path", [UNIVERSAL_PATH, LEGACY_PATH])
def test_create_answer_carries_the_generation_id_the_client_id_and_no_cost(launch: Launch, path: str) -> None:
    """An accepted create: x-inference-id is the generation id, the client id is echoed, nothing is charged yet."""
    emu = launch()
    answer = _traced(emu, "POST", path, "order-8f21c4", json=_body())
    assert answer.status_code == 201, answer.text
    assert answer.headers["x-inference-id"] == answer.json()["id"]
    assert answer.headers["x-client-request-id"] == "order-8f21c4"
    assert _credits(answer) == 0
    assert answer.headers["x-aimlapi-usd-spent"] == "0.000000000"
    exposed = {name.strip() for name in answer.headers["access-control-expose-headers"].split(",")}
    assert exposed >= TRACING


@pytest.mark.parametrize(("path", "usage_key"), [(UNIVERSAL_PATH, "credits_used"), (LEGACY_PATH, "tokens_used")])
def test_fetch_answers_cost_zero_until_completed_then_the_jobs_cost(launch: Launch, path: str, usage_key: str) -> None:
    """A fetch says 0 while the job runs and the job's cost (as meta.usage) once it is completed."""
    emu = launch(generation_seconds=1.0)
    generation_id = emu.create(_body(resolution="720p"), path)
    running = _traced(emu, "GET", path, "poll-1", params={"generation_id": generation_id})
    assert running.json()["status"] in ("queued", "generating")
    assert running.headers["x-inference-id"] == generation_id
    assert running.headers["x-client-request-id"] == "poll-1"
    assert _credits(running) == 0
    done, _ = emu.wait(generation_id, path)
    assert done["status"] == "completed"
    finished = _traced(emu, "GET", path, None, params={"generation_id": generation_id})
    assert finished.headers["x-inference-id"] == generation_id
    assert "x-client-request-id" not in finished.headers
    assert _credits(finished) == done["meta"]["usage"][usage_key] == price("720p", 5, model=WAN25)


def test_a_job_that_ends_in_error_is_never_charged(launch: Launch) -> None:
    """A job failed in moderation reports status error with {name, message}; headers and its log row cost 0."""
    emu = launch()
    create = _traced(emu, "POST", UNIVERSAL_PATH, "moderated", json=_body(prompt="Something forbidden happens"))
    generation_id = create.json()["id"]
    done, seen = emu.wait(generation_id)
    assert set(seen) <= {"queued", "generating", "error"}
    assert done["status"] == "error"
    assert set(done["error"]) == {"name", "message"}
    assert _credits(emu.fetch(generation_id)) == 0
    [create_row] = [row for row in _rows(emu) if row["client_request_id"] == "moderated"]
    assert (create_row["status"], create_row["inference_id"]) == ("succeeded", generation_id)
    assert create_row["cost"] == {"usd": 0, "credits": 0}


@pytest.mark.parametrize("path", [UNIVERSAL_PATH, LEGACY_PATH])
def test_refused_create_carries_a_fresh_inference_id_at_zero_cost(launch: Launch, path: str) -> None:
    """A create refused 400 still has an x-inference-id (of the generation id's shape, new each time) and costs 0."""
    emu = launch()
    first = _traced(emu, "POST", path, "bad-body-1", json=_body(duration=7))
    second = _traced(emu, "POST", path, "bad-body-2", json=_body(duration=7))
    _vendor_error(first, 400, path)
    ids = {first.headers["x-inference-id"], second.headers["x-inference-id"]}
    assert len(ids) == 2
    assert all(_is_issued_shape(value) for value in ids)
    assert first.headers["x-client-request-id"] == "bad-body-1"
    assert _credits(first) == 0
    assert emu.stats()["jobs_total"] == 0


def test_unauthorized_answers_are_traced_but_not_listed(launch: Launch) -> None:
    """A 401 create or fetch still carries the tracing headers, but no log row (there is no account)."""
    emu = launch()
    headers = {"Authorization": "Bearer wrong", "X-Client-Request-Id": "who-am-i"}
    create = httpx.post(f"{emu.url}{UNIVERSAL_PATH}", json=_body(), headers=headers)
    _vendor_error(create, 401, UNIVERSAL_PATH)
    assert _is_issued_shape(create.headers["x-inference-id"])
    assert create.headers["x-client-request-id"] == "who-am-i"
    assert _credits(create) == 0
    polled = str(uuid.uuid4())
    fetch = httpx.get(f"{emu.url}{UNIVERSAL_PATH}", params={"generation_id": polled}, headers=headers)
    _vendor_error(fetch, 401, UNIVERSAL_PATH)
    assert fetch.headers["x-inference-id"] == polled
    assert _rows(emu) == []


@pytest.mark.parametrize("polled", ["not-an-id", "6006EE77-1732-4D5B-ADBB-3CFD2D69B6EC", "123"])
def test_fetch_of_an_id_the_service_never_issues_has_no_inference_id(launch: Launch, polled: str) -> None:
    """Polling with a malformed generation id leaves x-inference-id out (the answer is the usual 404)."""
    emu = launch()
    answer = _traced(emu, "GET", UNIVERSAL_PATH, "poll-x", params={"generation_id": polled})
    _vendor_error(answer, 404, UNIVERSAL_PATH)
    assert "x-inference-id" not in answer.headers
    assert answer.headers["x-client-request-id"] == "poll-x"
    assert _credits(answer) == 0
    [row] = _rows(emu)
    assert row["status"] == "failed"
    assert row["inference_id"]
    assert row["inference_id"] != polled


def test_fetch_of_a_well_formed_unknown_id_names_it(launch: Launch) -> None:
    """A 404 for an id of the right shape carries that id as x-inference-id, as does its log row."""
    emu = launch()
    polled = str(uuid.uuid4())
    answer = emu.fetch(polled)
    _vendor_error(answer, 404, UNIVERSAL_PATH)
    assert answer.headers["x-inference-id"] == polled
    [row] = _rows(emu)
    assert (row["inference_id"], row["status"], row["model"]) == (polled, "failed", "")


@pytest.mark.parametrize(
    "client_id",
    ["x" * 129, "has space", "slash/not-allowed", "semi;colon", 'quote"d', ""],
    ids=["129-chars", "space", "slash", "semicolon", "quote", "empty"],
)
def test_invalid_client_request_ids_are_silently_dropped(launch: Launch, client_id: str) -> None:
    """An X-Client-Request-Id outside 1-128 of [A-Za-z0-9._:-] changes nothing but the echo and the log field."""
    emu = launch()
    answer = _traced(emu, "POST", UNIVERSAL_PATH, client_id, json=_body())
    assert answer.status_code == 201, answer.text
    assert set(answer.json()) == {"id", "status"}
    assert "x-client-request-id" not in answer.headers
    assert answer.headers["x-inference-id"] == answer.json()["id"]
    fetch = _traced(emu, "GET", UNIVERSAL_PATH, client_id, params={"generation_id": answer.json()["id"]})
    assert fetch.status_code == 200
    assert "x-client-request-id" not in fetch.headers
    rows = _rows(emu)
    assert len(rows) == 2
    assert {row["client_request_id"] for row in rows} == {None}
    assert emu.stats()["jobs_total"] == 1


def test_client_request_id_edges_that_are_kept(launch: Launch) -> None:
    """128 characters of the full alphabet are kept and echoed; the same header sent twice is dropped."""
    emu = launch()
    longest = ("Az09._:-" * 16)[:128]
    kept = _traced(emu, "POST", UNIVERSAL_PATH, longest, json=_body())
    assert kept.headers["x-client-request-id"] == longest
    twice = emu.client.post(
        UNIVERSAL_PATH,
        json=_body(prompt="Another"),
        headers=[("X-Client-Request-Id", "a"), ("X-Client-Request-Id", "b")],
    )
    assert twice.status_code == 201
    assert "x-client-request-id" not in twice.headers
    ids = {row["inference_id"]: row["client_request_id"] for row in _rows(emu)}
    assert ids == {kept.json()["id"]: longest, twice.json()["id"]: None}


# --- GET /v2/logs: rows ---------------------------------------------------------------


def test_logs_list_each_create_and_fetch_newest_first_in_the_vendor_shape(launch: Launch) -> None:
    """One row per create and fetch, newest first; downloads, /v2/logs and /_emulator calls are not listed."""
    emu = launch()
    create = _traced(emu, "POST", UNIVERSAL_PATH, "job-1", json=_body())
    generation_id = create.json()["id"]
    done, _ = emu.wait(generation_id)
    assert httpx.get(done["video"]["url"]).status_code == 200
    emu.stats()
    _logs(emu)
    polls = emu.stats()["fetches"]
    rows = _rows(emu)
    assert len(rows) == 1 + polls
    for row in rows:
        assert set(row) == ROW_FIELDS
        assert CREATED.fullmatch(row["created"]), row["created"]
        assert row["origin"] == "api"
        assert row["model"] == WAN25
        assert row["tokens"] == {"input": 0, "output": 0, "total": 0}
        assert row["inference_id"] == generation_id
        assert row["status"] == "succeeded"
        uuid.UUID(row["request_id"])
    assert [row["created"] for row in rows] == sorted((row["created"] for row in rows), reverse=True)
    assert rows[-1]["client_request_id"] == "job-1"
    assert {row["client_request_id"] for row in rows[:-1]} == {None}
    assert len({row["request_id"] for row in rows}) == len(rows)


def test_a_create_row_carries_the_jobs_cost_once_completed_and_fetch_rows_none(launch: Launch) -> None:
    """The create's row costs 0 while its job runs and the job's price once completed; poll rows cost 0."""
    emu = launch(generation_seconds=1.0)
    generation_id = _traced(emu, "POST", UNIVERSAL_PATH, "priced", json=_body(resolution="480p")).json()["id"]
    [row] = _rows(emu)
    assert row["cost"] == {"usd": 0, "credits": 0}
    emu.wait(generation_id)
    rows = _rows(emu)
    [create_row] = [row for row in rows if row["client_request_id"] == "priced"]
    expected = price("480p", 5, model=WAN25)
    assert create_row["cost"] == {"usd": pytest.approx(expected / CREDITS_PER_USD), "credits": expected}
    assert all(row["cost"]["credits"] == 0 for row in rows if row is not create_row)


def test_failed_requests_are_listed_at_zero_cost_under_their_own_ids(launch: Launch) -> None:
    """400, 429, 403 and a 500/503 before the job is made: failed rows, cost 0, the answer's ids."""
    emu = launch(
        max_pending=1,
        max_concurrent=1,
        generation_seconds=5.0,
        credits=price("1080p", 5, model=WAN25) * 1.5,
        faults=(Fault("create", 503, nth=2), Fault("create", 500, nth=3)),
    )
    made = _traced(emu, "POST", UNIVERSAL_PATH, "made", json=_body())
    assert made.status_code == 201
    answers = {
        "unavailable": _traced(emu, "POST", UNIVERSAL_PATH, "unavailable", json=_body()),
        "internal": _traced(emu, "POST", UNIVERSAL_PATH, "internal", json=_body()),
        "invalid": _traced(emu, "POST", UNIVERSAL_PATH, "invalid", json=_body(duration=7)),
        "too-many": _traced(emu, "POST", UNIVERSAL_PATH, "too-many", json=_body(resolution="480p")),
        "broke": _traced(emu, "POST", UNIVERSAL_PATH, "broke", json=_body(prompt="Other")),
    }
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {"unavailable": 503, "internal": 500, "invalid": 400, "too-many": 429, "broke": 403}
    assert emu.stats()["jobs_total"] == 1
    rows = {row["client_request_id"]: row for row in _rows(emu)}
    assert rows["made"]["status"] == "succeeded"
    for name, answer in answers.items():
        row = rows[name]
        assert row["status"] == "failed"
        assert row["cost"] == {"usd": 0, "credits": 0}
        assert row["inference_id"] == answer.headers["x-inference-id"]
        assert row["request_id"] == answer.json()["requestId"]
        assert row["model"] == WAN25


@pytest.mark.parametrize(
    "breakage",
    [
        {"faults": (Fault("create", 500, after_create=True),)},
        {"faults": (Fault("create", kind="reset", after_create=True),)},
        {"lost_response_rate": 1.0},
    ],
    ids=["500-after-create", "reset-after-create", "lost-response"],
)
def test_a_create_whose_answer_was_lost_is_listed_as_succeeded_with_the_job(
    launch: Launch, breakage: dict[str, Any]
) -> None:
    """The job was made though its answer was lost: the row is succeeded, with the generation id and the client id."""
    emu = launch(**breakage)
    lost: httpx.Response | None
    try:
        lost = _traced(emu, "POST", UNIVERSAL_PATH, "order-lost", json=_body())
    except (httpx.ReadError, httpx.RemoteProtocolError):
        lost = None  # cut mid-answer: the client has nothing
    assert lost is None or lost.status_code >= 500
    assert emu.stats()["jobs_total"] == 1
    [row] = _rows(emu)
    assert row["status"] == "succeeded"
    assert row["client_request_id"] == "order-lost"
    generation_id = row["inference_id"]
    if lost is not None:
        # The error the client met tells it nothing of the job; only the logs do.
        assert lost.headers["x-inference-id"] != generation_id
        assert generation_id not in lost.text
    done, _ = emu.wait(generation_id)
    assert done["status"] == "completed"
    [create_row] = [row for row in _rows(emu) if row["client_request_id"] == "order-lost"]
    assert create_row["cost"]["credits"] == price("1080p", 5, model=WAN25)


# --- GET /v2/logs: filters, window, paging ---------------------------------------------


def test_model_filter_repeats_matches_bare_aliases_and_never_splits_commas(launch: Launch) -> None:
    """model= matches source/alias or the alias exactly, up to 50 times; 'a,b' is one name and matches nothing."""
    emu = launch()
    emu.create(_body())
    emu.create(_body(model=WAN22, duration=None))
    assert [row["model"] for row in _rows(emu, ("model", WAN25))] == [WAN25]
    assert [row["model"] for row in _rows(emu, ("model", "wan2.2-i2v-plus"))] == [WAN22]
    assert len(_rows(emu, ("model", WAN25), ("model", "wan2.2-i2v-plus"))) == 2
    comma = _logs(emu, ("model", f"{WAN25},{WAN22}"))
    assert comma.status_code == 200
    assert comma.json() == {"data": [], "pagination": {"limit": 50, "offset": 0, "total": 0, "has_more": False}}
    assert _rows(emu, ("model", "alibaba")) == []
    assert _rows(emu, ("model", "WAN2.5-I2V-PREVIEW")) == []
    fifty = [("model", f"alibaba/m{n}") for n in range(49)]
    assert len(_rows(emu, *fifty, ("model", WAN25))) == 1
    _vendor_error(_logs(emu, *fifty, ("model", WAN25), ("model", WAN22)), 400, LOGS)


def test_status_filter_repeats_and_refuses_anything_else(launch: Launch) -> None:
    """status= keeps succeeded or failed rows, both when repeated; a comma list or other word is a 400."""
    emu = launch()
    emu.create(_body())
    assert emu.post(_body(duration=7)).status_code == 400
    assert [row["status"] for row in _rows(emu, ("status", "succeeded"))] == ["succeeded"]
    assert [row["status"] for row in _rows(emu, ("status", "failed"))] == ["failed"]
    assert len(_rows(emu, ("status", "succeeded"), ("status", "failed"))) == 2
    for bad in ("succeeded,failed", "error", "Succeeded", ""):
        _vendor_error(_logs(emu, ("status", bad)), 400, LOGS)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


@pytest.mark.parametrize(
    "query",
    [
        [],
        [("period", "1h"), ("start", "2026-01-01T00:00:00Z"), ("end", "2026-01-02T00:00:00Z")],
        [("period", "1h"), ("start", "2026-01-01T00:00:00Z")],
        [("start", "2026-01-01T00:00:00Z")],
        [("end", "2026-01-02T00:00:00Z")],
        [("period", "0h")],
        [("period", "24")],
        [("period", "7w")],
        [("period", "-1d")],
        [("period", "1.5h")],
        [("period", "7D")],
        [("period", "93d")],
        [("period", "2209h")],
        [("period", "1h"), ("period", "2h")],
        [("start", "yesterday"), ("end", "2026-01-02T00:00:00Z")],
        [("start", "2026-02-30T00:00:00Z"), ("end", "2026-03-02T00:00:00Z")],
        [("start", "2026-01-02T00:00:00Z"), ("end", "2026-01-01T23:59:59Z")],
        [("start", "2026-01-01T00:00:00Z"), ("end", "2026-04-03T00:00:01Z")],
    ],
    ids=[
        "neither",
        "period-and-both",
        "period-and-start",
        "start-alone",
        "end-alone",
        "zero-period",
        "no-unit",
        "weeks",
        "negative",
        "fraction",
        "upper-case",
        "93-days",
        "over-92-days-in-hours",
        "period-twice",
        "not-a-date",
        "no-such-day",
        "end-before-start",
        "window-over-92-days",
    ],
)
def test_window_rules_answer_400(launch: Launch, query: list[tuple[str, str]]) -> None:
    """Neither or both of period and start+end, malformed values, end before start, over 92 days: 400."""
    emu = launch()
    body = _vendor_error(_logs(emu, *query, period=None), 400, LOGS)
    assert body["message"].startswith("Query validation error!")


def test_windows_up_to_92_days_and_times_without_offset_read_as_utc(launch: Launch) -> None:
    """92 days is allowed either way; a start/end without an offset is UTC, one with an offset is honoured."""
    emu = launch()
    emu.create(_body())
    assert len(_rows(emu, period="92d")) == 1
    assert len(_rows(emu, period="2208h")) == 1
    now = datetime.now(UTC).replace(tzinfo=None)
    naive = [("start", _iso(now - timedelta(minutes=5))), ("end", _iso(now + timedelta(minutes=5)))]
    assert len(_rows(emu, *naive, period=None)) == 1
    # The same wall-clock times three hours east of UTC are three hours earlier: nothing then.
    east = [(name, value + "+03:00") for name, value in naive]
    assert _rows(emu, *east, period=None) == []
    zulu = [("start", _iso(now - timedelta(days=92)) + "Z"), ("end", _iso(now + timedelta(seconds=1)) + "Z")]
    assert _logs(emu, *zulu, period=None).status_code == 400
    widest = [("start", _iso(now - timedelta(days=91, hours=23)) + "Z"), ("end", _iso(now + timedelta(hours=1)) + "Z")]
    assert len(_rows(emu, *widest, period=None)) == 1
    assert _rows(emu, ("start", "2020-01-01"), ("end", "2020-01-02"), period=None) == []


def test_limit_and_offset_page_through_total_with_has_more(launch: Launch) -> None:
    """Pages: limit and offset slice the newest-first rows, total counts all matches, has_more says a page follows."""
    emu = launch()
    for n in range(5):
        emu.create(_body(prompt=f"Scene {n}"))
    everything = _rows(emu)
    assert len(everything) == 5
    first = _logs(emu, ("limit", "2")).json()
    assert first["pagination"] == {"limit": 2, "offset": 0, "total": 5, "has_more": True}
    assert first["data"] == everything[:2]
    middle = _logs(emu, ("limit", "2"), ("offset", "2")).json()
    assert middle["data"] == everything[2:4]
    assert middle["pagination"]["has_more"] is True
    last = _logs(emu, ("limit", "2"), ("offset", "4")).json()
    assert last["data"] == everything[4:]
    assert last["pagination"] == {"limit": 2, "offset": 4, "total": 5, "has_more": False}
    beyond = _logs(emu, ("offset", "9")).json()
    assert beyond == {"data": [], "pagination": {"limit": 50, "offset": 9, "total": 5, "has_more": False}}
    assert _logs(emu, ("limit", "100")).json()["pagination"]["limit"] == 100
    for bad in [("limit", "0"), ("limit", "101"), ("limit", "ten"), ("limit", "2.5"), ("offset", "-1"), ("offset", "")]:
        _vendor_error(_logs(emu, bad), 400, LOGS)


def test_rows_appear_only_after_the_analytics_delay(launch: Launch) -> None:
    """With logs_delay_seconds=2 a request's row is absent at first and listed about two seconds later."""
    emu = launch(logs_delay_seconds=2.0)
    started = time.monotonic()
    generation_id = emu.create(_body())
    assert _rows(emu) == []
    rows = _wait_for(emu, count=1)
    assert time.monotonic() - started >= 2.0
    assert [row["inference_id"] for row in rows] == [generation_id]


def test_key_prefix_of_the_key_lists_its_rows_and_any_other_is_404(
    launch: Launch, emulator_auth: dict[str, str]
) -> None:
    """key_prefix: a prefix of the key (or the key) lists its requests; another prefix is a 404; no key is a 401."""
    emu = launch()
    emu.create(_body())
    key = emulator_auth["Authorization"].removeprefix("Bearer ")
    assert len(_rows(emu, ("key_prefix", key[:8]))) == 1
    assert len(_rows(emu, ("key_prefix", key))) == 1
    for other in ("sk-other", key + "x", ""):
        _vendor_error(_logs(emu, ("key_prefix", other)), 404, LOGS)
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        answer = httpx.get(f"{emu.url}{LOGS}", params={"period": "1h"}, headers=headers)
        _vendor_error(answer, 401, LOGS)


def test_logs_answer_429_past_200_requests_in_60_seconds(launch: Launch) -> None:
    """The 201st request in a minute is a 429 in the vendor's shape, with Retry-After as the emulator's other 429s."""
    emu = launch()
    started = time.monotonic()
    codes = [_logs(emu).status_code for _ in range(200)]
    assert codes == [200] * 200
    refused = _logs(emu)
    assert time.monotonic() - started < 60
    body = _vendor_error(refused, 429, LOGS)
    assert body["message"] == "ThrottlerException: Too Many Requests"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # Inference requests have no part in it.
    assert emu.post(_body()).status_code == 201
    assert emu.stats()["logs_requests"] == 201


def test_sliding_window_lets_requests_through_as_old_ones_leave() -> None:
    """200 per 60 s: the 201st waits for the first to leave the window, and the wait is exact."""
    window = SlidingWindow(200, 60.0)
    assert all(window.take(float(n) * 0.1) == 0 for n in range(200))
    assert window.take(30.0) == pytest.approx(30.0)
    assert window.take(59.9) == pytest.approx(0.1)
    assert window.take(60.0) == 0
    assert window.take(60.05) == pytest.approx(0.05)


def test_stats_count_logs_requests_beside_the_others(launch: Launch) -> None:
    """/_emulator/stats counts /v2/logs requests (whatever their answer) apart from creates and fetches."""
    emu = launch()
    emu.create(_body())
    _logs(emu)
    _logs(emu, period=None)
    stats = emu.stats()
    assert stats["logs_requests"] == 2
    assert stats["creates"] == 1
    assert stats["fetches"] == 0
    assert stats["billed_twice"] == 0


def test_cli_takes_the_logs_delay() -> None:
    """i2v emulator --logs-delay sets logs_delay_seconds (1 s by default); a negative delay is refused."""
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.config_from_args(parser.parse_args([]), "k").logs_delay_seconds == 1.0
    assert cli.config_from_args(parser.parse_args(["--logs-delay", "0"]), "k").logs_delay_seconds == 0.0
    assert cli.config_from_args(parser.parse_args(["--logs-delay", "2.5"]), "k").logs_delay_seconds == 2.5
    with pytest.raises(ValueError, match="logs_delay_seconds"):
        EmulatorConfig(api_key="k", logs_delay_seconds=-1)
