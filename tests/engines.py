"""Engines on the emulator for tests: rows from a small CSV, and an engine on any destination."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from PIL import Image

from i2v.api.client import VideoApi, make_http_client
from i2v.api.downloads import DownloadRules
from i2v.api.settings import Secret
from i2v.engine.admission import AdmissionLimiter
from i2v.engine.journal import Entry, Journal
from i2v.engine.offload import Offload
from i2v.engine.pacing import PollPacer
from i2v.engine.runner import Engine
from i2v.engine.spec import EngineOptions
from i2v.inputs.row import Row
from i2v.inputs.validation import read_rows
from i2v.storage.destination import Destination
from tests.emulated import Emulator


def draw_images(folder: Path) -> Path:
    """Two small images, ``a.png`` and ``b.png``, in ``folder``; the folder."""
    for name, color in (("a", (200, 80, 20)), ("b", (20, 80, 200))):
        Image.new("RGB", (48, 27), color).save(folder / f"{name}.png")
    return folder


async def journal_intent(dest: Destination, row: Row, *, sent_ago_s: float, generation_id: str | None = None) -> Entry:
    """A journal entry as a run killed mid-create leaves it: ``sending``, or with the job it made when given."""
    offload = Offload(1)
    try:
        journal = Journal(dest, offload)
        at = time.time() - sent_ago_s
        await journal.sending(row.key, model=row.model, route=row.route, at=at, run="killed", sends=1)
        entry = await journal.load(row.key)
        assert entry is not None
        if generation_id is not None:
            entry = await journal.found(entry, generation_id)
        return entry
    finally:
        offload.close()


def make_rows(folder: Path, count: int, *, prompt: str = "Scene {i} of the harbour at dawn") -> list[Row]:
    """``count`` valid rows over two small images in ``folder`` (``a.png`` and ``b.png`` must exist)."""
    csv = folder / f"rows-{count}.csv"
    lines = [f"{'ab'[i % 2]}.png,{prompt.format(i=i)},5,480p" for i in range(count)]
    csv.write_text("image_url,prompt,duration,resolution\n" + "\n".join(lines) + "\n")
    return read_rows(csv).rows


@asynccontextmanager
async def engine_on(
    emu: Emulator, dest: Destination, *, max_in_flight: int = 8, run: str = "run-1", **options: Any
) -> AsyncIterator[Engine]:
    """An engine of run ``run`` writing into ``dest``, its clients on the emulator; closed on exit."""
    http = make_http_client(emu.settings())
    engine = Engine(
        api=VideoApi(http, Secret(emu.api_key)),
        downloads=http,
        dest=dest,
        limiter=AdmissionLimiter(max_in_flight),
        pacer=PollPacer(0.1),
        offload=Offload(4),
        options=EngineOptions(
            **{"run": run, "job_timeout_s": 60, "downloads": DownloadRules.for_api(emu.base_url), **options}
        ),
    )
    try:
        yield engine
    finally:
        await engine.aclose()
