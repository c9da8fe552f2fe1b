"""The emulator's harsher faults, over real HTTP on 127.0.0.1.

Status words beyond the four of the OpenAPI files, terminal failures other than
``error``, answers held back, connections reset mid-body, downloads cut short under a
full ``Content-Length``, and scripted faults by kind and position. Whatever breaks on
the wire is checked with a real client (httpx) and, where the difference between a
clean close and a reset matters, with a bare socket.
"""

from __future__ import annotations

import argparse
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from i2v.api.models import LEGACY_PATH, UNIVERSAL_PATH
from i2v.emulator import EmulatorConfig, Fault, cli
from i2v.emulator.pricing import price
from tests.test_emulator import WAN25, Emu, Launch, _body, _vendor_error

FAULTS_PATH = "/_emulator/faults"


@pytest.fixture
def launch(start_emulator: Any, emulator_auth: dict[str, str]) -> Iterator[Launch]:
    """Start emulators with config overrides; ``timeout`` is the client's (10 s unless given)."""
    with ExitStack() as stack:

        def start(*, timeout: float = 10, **config: Any) -> Emu:
            url: str = start_emulator(**config)
            client = httpx.Client(base_url=url, headers=emulator_auth, timeout=timeout)
            return Emu(url, stack.enter_context(client))

        yield start


def _queue(emu: Emu, *faults: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(f"{emu.url}{FAULTS_PATH}", json=list(faults))
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


def _eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait until ``check()`` holds: the server notices a hang-up a moment after it happens."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _video_url(emu: Emu, generation_id: str) -> str:
    done, _ = emu.wait(generation_id)
    assert done["status"] == "completed", done
    url: str = done["video"]["url"]
    return url


def _raw_get(url: str) -> tuple[str, bytes, OSError | None]:
    """GET with a bare socket, reading until the server ends the connection.

    Returns the response head, the body bytes received, and the error that ended the
    connection (``None`` for a clean close): what a client that ignores
    ``Content-Length`` would see.
    """
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    request = f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n"
    received = bytearray()
    error: OSError | None = None
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(request.encode())
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError as exc:
            error = exc
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    return head.decode("latin-1"), body, error


def _drain(answer: httpx.Response, into: bytearray) -> None:
    """Read a streamed answer's body into ``into`` as it arrives."""
    for chunk in answer.iter_raw():
        into += chunk


def _content_length(head: str) -> int:
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return int(value)
    raise AssertionError(f"no Content-Length in {head!r}")


# --- status words ---------------------------------------------------------------------


def test_status_variants_use_every_running_word_fixed_by_seed(launch: Launch) -> None:
    """Queued jobs answer queued/waiting, generating ones generating/active/processing, per seed."""

    def words(seed: int) -> tuple[list[str], list[str], list[str], dict[str, Any]]:
        emu = launch(status_variants=True, seed=seed, max_concurrent=1, generation_seconds=60.0)
        created = [emu.post(_body(prompt=f"Job {n}")) for n in range(2)]
        assert [answer.status_code for answer in created] == [201, 201]
        running, waiting = (answer.json()["id"] for answer in created)
        on_create = [answer.json()["status"] for answer in created]
        generating = [emu.status(running) for _ in range(20)]
        queued = [emu.status(waiting) for _ in range(20)]
        return on_create, generating, queued, emu.stats()

    on_create, generating, queued, stats = words(3)
    assert set(on_create) <= {"queued", "waiting"}
    assert set(generating) == {"generating", "active", "processing"}
    assert set(queued) == {"queued", "waiting"}
    # The jobs' real states are unchanged: the words are only how they are reported.
    assert stats["jobs"]["generating"] == 1
    assert stats["jobs"]["queued"] == 1
    unusual = [word for word in on_create + generating + queued if word not in ("queued", "generating")]
    assert stats["faults"]["status_variant"] == len(unusual)
    # Same seed, same jobs, same polls: the same words; another seed picks others.
    assert words(3)[:3] == (on_create, generating, queued)
    assert words(4)[:3] != (on_create, generating, queued)


def test_terminal_status_rate_ends_jobs_failed_cancelled_or_expired(launch: Launch) -> None:
    """Doomed jobs end in failed, cancelled or expired with an error object, billed in full."""
    emu = launch(terminal_status_rate=1.0, generation_seconds=0.1, max_concurrent=16, seed=1)
    ids = [emu.create(_body(prompt=f"Scene {n}", resolution="480p")) for n in range(9)]
    finals = [emu.wait(generation_id)[0] for generation_id in ids]

    assert {final["status"] for final in finals} == {"failed", "cancelled", "expired"}
    cost = price("480p", 5, model=WAN25)
    for final in finals:
        assert final["video"] is None
        assert set(final["error"]) == {"name", "message"}
        assert final["error"]["name"]
        assert final["error"]["message"]
        assert final["meta"] == {"usage": {"credits_used": cost}}
    legacy = emu.fetch(ids[0], LEGACY_PATH).json()
    assert legacy["status"] == finals[0]["status"]
    assert legacy["meta"] == {"usage": {"tokens_used": cost}}

    stats = emu.stats()
    assert stats["faults"]["terminal_status"] == 9
    assert sum(stats["jobs"][word] for word in ("failed", "cancelled", "expired")) == 9
    assert stats["credits_used"] == 9 * cost


# --- answers held back ----------------------------------------------------------------


def test_slow_responses_hold_api_answers_and_downloads(launch: Launch) -> None:
    """Every answer waits slow_response_seconds, then arrives whole; an impatient client gives up."""
    emu = launch(slow_response_rate=1.0, slow_response_seconds=0.3, generation_seconds=0.05)
    started = time.monotonic()
    generation_id = emu.create(_body())
    assert time.monotonic() - started >= 0.3
    url = _video_url(emu, generation_id)
    started = time.monotonic()
    download = httpx.get(url)
    assert time.monotonic() - started >= 0.3
    assert download.status_code == 200
    assert len(download.content) == int(download.headers["content-length"])

    impatient = httpx.Client(base_url=emu.url, headers=emu.client.headers, timeout=0.05)
    with impatient, pytest.raises(httpx.ReadTimeout):
        impatient.get(UNIVERSAL_PATH, params={"generation_id": generation_id})
    _eventually(lambda: emu.stats()["client_hangups"] == 1)
    stats = emu.stats()
    assert stats["faults"]["slow"] == stats["creates"] + stats["fetches"] + stats["downloads"]
    assert stats["faults_scripted"]["slow"] == 0
    assert stats["downloads_served"] == 1
    assert stats["lost_responses"] == 0


# --- connections cut ------------------------------------------------------------------


def test_connection_reset_cuts_answers_mid_body(launch: Launch) -> None:
    """A reset answer sends status, headers and half its body, then a RST: the client gets ReadError."""
    emu = launch(connection_reset_rate=1.0)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        emu.post(_body(prompt="first"))
    with emu.client.stream("POST", UNIVERSAL_PATH, json=_body(prompt="second")) as answer:
        assert answer.status_code == 201
        length = int(answer.headers["content-length"])
        received = bytearray()
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            _drain(answer, received)
    assert len(received) == length // 2
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        emu.fetch("no-such-job")

    # Both creates made and billed their jobs: their answers were lost, not their work.
    stats = emu.stats()
    assert stats["jobs_total"] == 2
    assert stats["lost_responses"] == 2
    assert stats["credits_used"] == 2 * price("1080p", 5, model=WAN25)
    assert stats["faults"]["reset"] == 3
    assert stats["responses"] == {"201": 2, "404": 1}


def test_truncated_download_declares_the_full_length_then_closes(launch: Launch) -> None:
    """A truncated download sends half its declared length and closes cleanly: only the length tells."""
    emu = launch(truncated_download_rate=1.0)
    url = _video_url(emu, emu.create(_body()))
    with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
        httpx.get(url)
    head, body, error = _raw_get(url)
    assert head.startswith("HTTP/1.1 200")
    assert error is None  # a FIN, not a reset: a careless client would keep half a video
    assert len(body) == _content_length(head) // 2
    stats = emu.stats()
    assert stats["faults"]["truncate"] == 2
    assert stats["downloads_served"] == 0


def test_random_transport_faults_are_deterministic_under_a_seed(launch: Launch) -> None:
    """Same seed and requests: the same answers are slow, reset or whole; another seed differs."""

    def run(seed: int) -> list[str]:
        emu = launch(
            seed=seed,
            slow_response_rate=0.2,
            slow_response_seconds=30.0,
            connection_reset_rate=0.3,
            # Far from the hold and far above a normal answer's time, even on a busy machine.
            timeout=1.0,
        )
        outcomes = []
        for n in range(8):
            try:
                outcomes.append(str(emu.fetch(f"job-{n}").status_code))
            except httpx.ReadTimeout:
                outcomes.append("slow")
            except httpx.ReadError:
                outcomes.append("reset")
        stats = emu.stats()
        # A slow answer that is also reset is held first: its client times out.
        assert stats["faults"]["reset"] >= outcomes.count("reset")
        assert stats["faults"]["slow"] == outcomes.count("slow")
        return outcomes

    # Seeds chosen for one slow answer at most: each costs the client its timeout.
    first = run(5)
    assert set(first) == {"404", "slow", "reset"}
    assert run(5) == first
    assert run(10) != first


# --- scripted faults by kind and position -----------------------------------------------


def test_scripted_timeout_strikes_the_nth_create_after_its_job_is_made(launch: Launch) -> None:
    """The 3rd create times out after its job was made: two pass, the third is billed unanswered."""
    emu = launch(timeout=0.5)
    queued = _queue(emu, {"on": "create", "kind": "timeout", "nth": 3, "after_create": True, "seconds": 30})
    assert queued == {"queued": 1, "pending": 1}
    emu.create(_body(prompt="one"))
    emu.create(_body(prompt="two"))
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        emu.post(_body(prompt="three"))
    emu.create(_body(prompt="four"))
    # The hold ended when the client hung up, not after its 30 s.
    assert time.monotonic() - started < 10
    _eventually(lambda: emu.stats()["client_hangups"] == 1)
    stats = emu.stats()
    assert stats["jobs_total"] == 4
    assert stats["credits_used"] == 4 * price("1080p", 5, model=WAN25)
    assert stats["lost_responses"] == 1
    assert stats["faults_scripted"]["timeout"] == 1
    assert stats["faults_pending"] == 0


def test_scripted_timeout_answers_a_patient_client_and_makes_nothing(launch: Launch) -> None:
    """Without after_create a timeout holds, then answers its status (504 unless told); no job."""
    emu = launch()
    _queue(
        emu,
        {"on": "create", "kind": "timeout", "seconds": 0.3},
        {"on": "fetch", "kind": "timeout", "seconds": 0.3, "status": 503, "retry_after": 2},
    )
    started = time.monotonic()
    _vendor_error(emu.post(_body()), 504, UNIVERSAL_PATH)
    assert time.monotonic() - started >= 0.3
    unavailable = emu.fetch("no-such-job")
    _vendor_error(unavailable, 503, UNIVERSAL_PATH)
    assert unavailable.headers["Retry-After"] == "2"
    stats = emu.stats()
    assert stats["jobs_total"] == 0
    assert stats["lost_responses"] == 0
    assert stats["faults_scripted"]["timeout"] == 2


def test_scripted_reset_on_create_before_and_after_the_job_is_made(launch: Launch) -> None:
    """A reset create makes nothing unless after_create, when its job is made and billed first."""
    emu = launch()
    _queue(emu, {"on": "create", "kind": "reset"}, {"on": "create", "kind": "reset", "after_create": True})
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        emu.post(_body())
    assert emu.stats()["jobs_total"] == 0
    # An after_create fault waits for a create that makes a job.
    assert emu.post(_body(duration=7)).status_code == 400
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        emu.post(_body())
    emu.create(_body())
    stats = emu.stats()
    assert stats["jobs_total"] == 2
    assert stats["lost_responses"] == 1
    assert stats["faults_scripted"]["reset"] == 2
    assert stats["responses"]["502"] == 1  # the gateway's answer the first reset cut


def test_scripted_download_faults_slow_reset_and_truncate(launch: Launch) -> None:
    """Download faults queued together strike downloads 1, 2 and 3; the fourth is whole."""
    emu = launch()
    url = _video_url(emu, emu.create(_body()))
    _queue(
        emu,
        {"on": "download", "kind": "slow", "seconds": 0.3},
        {"on": "download", "kind": "reset", "nth": 2},
        {"on": "download", "kind": "truncate", "nth": 3},
    )
    started = time.monotonic()
    whole = httpx.get(url)
    assert time.monotonic() - started >= 0.3
    assert len(whole.content) == int(whole.headers["content-length"])
    head, body, error = _raw_get(url)
    assert head.startswith("HTTP/1.1 200")
    assert isinstance(error, ConnectionResetError)
    assert len(body) == _content_length(head) // 2
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url)
    assert httpx.get(url).content == whole.content
    stats = emu.stats()
    assert {kind: stats["faults_scripted"][kind] for kind in ("slow", "reset", "truncate")} == {
        "slow": 1,
        "reset": 1,
        "truncate": 1,
    }
    assert stats["downloads_served"] == 2


def test_scripted_faults_count_nth_from_when_they_were_queued(launch: Launch) -> None:
    """Requests count towards nth from when a fault is queued; faults due together go in queue order."""
    emu = launch()
    first = {"on": "fetch", "status": 503, "count": 2}
    second = {"on": "fetch", "status": 500, "nth": 2}
    assert _queue(emu, first, second)["pending"] == 3
    # The second is due at fetch 2, but the first, queued earlier, still has a strike left.
    assert [emu.fetch("x").status_code for _ in range(4)] == [503, 503, 500, 404]
    _queue(emu, {"on": "fetch", "status": 502, "nth": 2})
    assert [emu.fetch("x").status_code for _ in range(3)] == [404, 502, 404]
    assert emu.stats()["faults_scripted"]["status"] == 4


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        ({"on": "create", "kind": "explode"}, "kind must be one of"),
        ({"on": "create"}, "needs a status"),
        ({"on": "create", "kind": "truncate"}, "truncate only applies"),
        ({"on": "fetch", "kind": "reset", "status": 502}, "takes no status"),
        ({"on": "fetch", "kind": "slow", "retry_after": 1}, "takes no retry_after"),
        ({"on": "fetch", "kind": "reset", "seconds": 1}, "takes no seconds"),
        ({"on": "create", "kind": "slow", "after_create": True}, "after_create does not apply"),
        ({"on": "fetch", "kind": "timeout", "after_create": True}, "only applies to faults on 'create'"),
        ({"on": "fetch", "status": 500, "nth": 0}, "nth must be at least 1"),
        ({"on": "fetch", "status": 500, "nth": "2"}, "nth must be an integer"),
        ({"on": "fetch", "kind": "timeout", "seconds": -1}, "seconds must be a positive"),
        ({"on": "fetch", "status": 500, "count": 0}, "count must be at least 1"),
        ({"on": "fetch", "status": 500, "when": "now"}, "unknown fault field(s): when"),
    ],
)
def test_fault_form_is_checked(fault: dict[str, Any], problem: str) -> None:
    """A fault that makes no sense is refused with a message naming what is wrong."""
    with pytest.raises(ValueError, match=re.escape(problem)):
        Fault.from_json(fault)


def test_fault_forms_old_and_new_are_read(launch: Launch) -> None:
    """The original form (nulls included) still reads; the new one carries kind, nth and seconds."""
    old = {"on": "create", "status": 502, "count": 1, "retry_after": None, "after_create": True}
    assert Fault.from_json(old) == Fault("create", 502, after_create=True)
    new = {"on": "create", "kind": "timeout", "nth": 3, "after_create": True, "seconds": 5}
    assert Fault.from_json(new) == Fault("create", kind="timeout", nth=3, after_create=True, seconds=5.0)
    assert Fault.from_json(new).answer_status == 504
    emu = launch()
    refused = httpx.post(f"{emu.url}{FAULTS_PATH}", json=[new, {"on": "download", "kind": "truncate", "status": 500}])
    assert refused.status_code == 400
    assert "takes no status" in refused.json()["error"]
    assert emu.stats()["faults_pending"] == 0


# --- configuration and command line -----------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"terminal_status_rate": 1.5},
        {"slow_response_rate": -0.1},
        {"connection_reset_rate": 2.0},
        {"truncated_download_rate": 1.01},
        {"slow_response_seconds": 0.0},
        {"slow_response_seconds": float("nan")},
    ],
)
def test_config_refuses_impossible_fault_settings(overrides: dict[str, Any]) -> None:
    """Rates outside [0, 1] and a hold that is not a positive time are refused at construction."""
    (name,) = overrides
    with pytest.raises(ValueError, match=name):
        EmulatorConfig(api_key="k", **overrides)


def test_cli_options_reach_the_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    """Every fault option of `i2v emulator` lands in EmulatorConfig; a bad one exits 2 naming it."""
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    defaults = cli.config_from_args(parser.parse_args([]), "k")
    # A served emulator renders in worker processes; an embedded one in threads.
    assert defaults == EmulatorConfig(api_key="k", render_processes=2)
    args = parser.parse_args(
        [
            "--status-variants",
            "--terminal-status-rate",
            "0.1",
            "--slow-response-rate",
            "0.2",
            "--slow-response-seconds",
            "7",
            "--connection-reset-rate",
            "0.3",
            "--truncated-download-rate",
            "0.4",
        ]
    )
    config = cli.config_from_args(args, "k")
    assert config.status_variants is True
    assert (config.terminal_status_rate, config.slow_response_rate, config.slow_response_seconds) == (
        0.1,
        0.2,
        7.0,
    )
    assert (config.connection_reset_rate, config.truncated_download_rate) == (0.3, 0.4)
    bad = parser.parse_args(["--api-key", "k", "--port", "0", "--connection-reset-rate", "2"])
    assert cli.run(bad) == 2
    assert "connection_reset_rate" in capsys.readouterr().err
