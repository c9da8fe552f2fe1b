"""The bulk flow end to end: emulator over HTTP, moto's S3 server, Prefect's test harness."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import Image

from i2v.engine.admission import AdmissionLimiter
from i2v.engine.jobs import submit
from i2v.engine.journal import Journal
from i2v.engine.offload import Offload
from i2v.errors import AuthError
from i2v.inputs.validation import read_rows
from i2v.media.probe import probe
from i2v.storage.local import LocalDestination
from tests.emulated import Emulator, emulator
from tests.runs import wait_until

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module", autouse=True)
def _prefect() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=None):
        yield


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with emulator() as running:
        monkeypatch.setenv("AIMLAPI_BASE_URL", running.base_url)
        monkeypatch.setenv("AIMLAPI_API_KEY", running.api_key)
        yield running


@pytest.fixture
def images(tmp_path: Path) -> Path:
    for name, size, color in (
        ("wide", (96, 54), (200, 80, 20)),
        ("tall", (54, 96), (20, 80, 200)),
        ("square", (64, 64), (20, 160, 60)),
    ):
        Image.new("RGB", size, color).save(tmp_path / f"{name}.png")
    return tmp_path


def _run(csv: Path, dest: str, **params: Any) -> dict[str, Any]:
    from flows.generate import generate_videos

    options = {"poll_interval_s": 0.2, "job_timeout_s": 60.0, "max_in_flight": 4, **params}
    call: Any = generate_videos(input=str(csv), dest=dest, **options)
    result: dict[str, Any] = asyncio.run(call)
    return result


def _manifest(s3_client: Any, bucket: str, prefix: str, run: int | None = -1) -> pd.DataFrame:
    """The ``run``-th run's own manifest (oldest first), or with ``run=None`` the destination's merged one."""
    key = f"{prefix}/manifest.parquet"
    if run is not None:
        runs = sorted({k.split("/")[2] for k in _keys(s3_client, bucket, f"{prefix}/runs/")})
        key = f"{prefix}/runs/{runs[run]}/manifest.parquet"
    raw = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pd.read_parquet(io.BytesIO(raw))


MIXED = """id,image_url,prompt,model,duration,aspect_ratio,resolution
wide,wide.png,Waves roll onto the shore,,5,16:9,480p
tall,tall.png,Rain falls on a window,,10,9:16,480p
square,square.png,A leaf spins in the wind,alibaba/wan2.6-i2v,5,,720p
plus,wide.png,Balloons drift upward,alibaba/wan2.2-i2v-plus,,,480P
blocked,square.png,A forbidden door creaks open,,5,,480p
bad,wide.png,Too long a video,,12,,480p
lost,missing.png,No image here,,5,,480p
copy,wide.png,Waves roll onto the shore,,5,16:9,480p
"""


def test_mixed_run_to_s3_then_rerun_pays_only_for_failures(
    emu: Emulator, images: Path, aws_env: str, s3_client: Any, bucket: str
) -> None:
    """Every input row gets one manifest row; videos decode with the requested duration; a rerun skips done rows."""
    csv = images / "mixed.csv"
    csv.write_text(MIXED)
    dest = f"s3://{bucket}/set"

    summary = _run(csv, dest, rows_per_shard=3)
    frame = _manifest(s3_client, bucket, "set")
    assert len(frame) == 8 == summary["total"]
    by_id = _by_id(frame)
    assert [by_id[i]["status"] for i in ("wide", "tall", "square", "plus")] == ["completed"] * 4
    assert by_id["copy"]["status"] == "skipped"
    assert by_id["copy"]["error_kind"] == "duplicate"
    assert by_id["copy"]["video_uri"] == by_id["wide"]["video_uri"]
    blocked = by_id["blocked"]
    assert (blocked["status"], blocked["error_kind"], bool(blocked["retryable"])) == (
        "failed",
        "generation_failed",
        False,
    )
    assert "ContentModerationError" in blocked["error_message"]
    assert blocked["generation_id"]
    assert by_id["bad"]["error_kind"] == "invalid_input"
    assert "field 'duration'" in by_id["bad"]["error_message"]
    assert by_id["lost"]["error_kind"] == "invalid_input"
    assert "field 'image_url'" in by_id["lost"]["error_message"]
    assert frame["row_index"].tolist() == list(range(8))
    assert frame["flow_run_id"].nunique() == 3, "one flow run per shard of three rows"
    assert frame["run"].nunique() == 1

    for row_id, seconds in (("wide", 5), ("tall", 10), ("square", 5), ("plus", 5)):
        local = images / f"{row_id}.mp4"
        local.write_bytes(s3_client.get_object(Bucket=bucket, Key=f"set/videos/{row_id}.mp4")["Body"].read())
        info = probe(local)
        assert info.duration_s == pytest.approx(seconds, abs=0.01)
        assert by_id[row_id]["duration_s"] == pytest.approx(seconds, abs=0.01)
        assert by_id[row_id]["video_bytes"] == local.stat().st_size
    assert probe(images / "tall.mp4").height > probe(images / "tall.mp4").width
    assert emu.stats()["creates"] == 5

    second = _run(csv, dest, rows_per_shard=3)
    again = _by_id(_manifest(s3_client, bucket, "set"))
    assert second["total"] == 8
    assert [again[i]["error_kind"] for i in ("wide", "tall", "square", "plus")] == ["already_done"] * 4
    assert again["wide"]["video_sha256"] == by_id["wide"]["video_sha256"]
    assert (again["blocked"]["status"], again["blocked"]["error_kind"]) == ("skipped", "generation_failed")
    assert again["blocked"]["error_message"].startswith("not retried")
    assert emu.stats()["creates"] == 5, "a moderation verdict is not paid for again"
    runs = {key.split("/")[2] for key in _keys(s3_client, bucket, "set/runs/")}
    assert len(runs) == 2
    merged = _by_id(_manifest(s3_client, bucket, "set", run=None))
    assert set(merged) == {"wide", "tall", "square", "plus", "blocked"}, "one row per piece of work, valid rows only"
    assert merged["wide"]["status"] == "completed"
    assert merged["blocked"]["status"] == "failed", "a skip does not hide what an earlier run did"
    assert {row["attempts"] for row in merged.values()} == {1}


def _by_id(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    return {str(record["id"]): {str(k): v for k, v in record.items()} for record in frame.to_dict("records")}


def _keys(s3_client: Any, bucket: str, prefix: str) -> list[str]:
    return [item["Key"] for item in s3_client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def _one_row(images: Path, prompt: str = "Clouds pass over the hills") -> Path:
    csv = images / f"one-{uuid.uuid4().hex[:6]}.csv"
    csv.write_text(f"image_url,prompt,duration,resolution\nwide.png,{prompt},5,480p\n")
    return csv


def test_an_input_edited_between_shards_fails_the_later_shards_rows_and_the_manifest_is_written(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CSV edited while the first shards run: the shard read afterwards fails its row, naming the file."""
    csv = images / "changing.csv"
    csv.write_text(
        "image_url,prompt,duration,resolution\n" + "".join(f"wide.png,Scene number {i},5,480p\n" for i in range(3))
    )
    # Two shards run at once: the third starts only when one of the first two has ended, so
    # jobs long enough to outlast a slow start of the second shard keep the third reading last.
    with emulator(generation_seconds=6.0) as slow:
        monkeypatch.setenv("AIMLAPI_BASE_URL", slow.base_url)
        monkeypatch.setenv("AIMLAPI_API_KEY", slow.api_key)

        def edit_once_the_first_shards_run() -> None:
            wait_until(lambda: slow.stats()["creates"] >= 2, timeout=120, what="the first two shards' creates")
            csv.write_text(csv.read_text().replace("Scene number 2", "Scene number two, edited"))

        editor = threading.Thread(target=edit_once_the_first_shards_run)
        editor.start()
        try:
            result = _run(csv, str(tmp_path / "out"), rows_per_shard=1)
        finally:
            editor.join()
        assert slow.created() == 2, f"the edited row was never sent: {slow.stats()}"
    (own,) = (tmp_path / "out" / "runs").iterdir()
    frame = pd.read_parquet(own / "manifest.parquet")
    assert frame["status"].tolist() == ["completed", "completed", "failed"], frame[["error_kind", "error_message"]]
    changed = frame.iloc[2]
    assert (changed["error_kind"], bool(changed["retryable"])) == ("input_changed", True)
    assert f"{csv} changed after the run planned it" in changed["error_message"]
    assert result["failures_by_kind"] == {"input_changed": 1}


def test_a_run_to_s3_first_aborts_the_unfinished_uploads_killed_runs_left_under_its_prefix(
    emu: Emulator, images: Path, aws_env: str, s3_client: Any, bucket: str
) -> None:
    """Uploads never completed (moto dates them 2010) are aborted at the start of a run, under its prefix only."""
    lost = s3_client.create_multipart_upload(Bucket=bucket, Key="sets/a/videos/lost.mp4")["UploadId"]
    s3_client.upload_part(Bucket=bucket, Key="sets/a/videos/lost.mp4", UploadId=lost, PartNumber=1, Body=b"x" * 64)
    other = s3_client.create_multipart_upload(Bucket=bucket, Key="sets/b/videos/theirs.mp4")["UploadId"]
    _run(_one_row(images), f"s3://{bucket}/sets/a")
    left = [(u["Key"], u["UploadId"]) for u in s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    assert left == [("sets/b/videos/theirs.mp4", other)]


def test_429_with_retry_after_is_honoured(emu: Emulator, images: Path, tmp_path: Path) -> None:
    """A rate-limited create is sent again after Retry-After and the row completes."""
    emu.fault("create", 429, retry_after=1)
    _run(_one_row(images), str(tmp_path / "out"))
    frame = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert frame.loc[0, "status"] == "completed"
    assert frame.loc[0, "submit_attempts"] == 2
    assert emu.stats()["responses"]["429"] == 1


def test_batch_left_unfinished_by_5xx_is_retried_by_prefect(
    emu: Emulator, images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fetch 503s beyond what polling absorbs leave the row unfinished; Prefect retries its batch and it completes."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    from tasks.generation import generate_batch

    monkeypatch.setattr(generate_batch, "retry_delay_seconds", [0.1, 0.1])
    emu.fault("fetch", 503, count=5)
    _run(_one_row(images), str(tmp_path / "out"))
    frame = pd.read_parquet(tmp_path / "out" / "manifest.parquet")
    assert frame.loc[0, "status"] == "completed"
    assert frame.loc[0, "submit_attempts"] == 0, "the retry re-attached to the job"
    assert emu.stats()["responses"]["503"] == 5
    assert emu.created() == 1
    run = str(frame.loc[0, "flow_run_id"])
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=["generate-0.0"])))
    mine = [t for t in task_runs if str(t.flow_run_id) == run]
    assert [t.run_count for t in mine] == [2]


def test_400_is_a_non_retryable_failure(emu: Emulator, images: Path, tmp_path: Path) -> None:
    """A create the API rejects fails the row with the API's message, marked not retryable."""
    emu.fault("create", 400)
    _run(_one_row(images), str(tmp_path / "out"))
    frame = pd.read_parquet(tmp_path / "out" / "manifest.parquet")
    row = frame.iloc[0]
    assert (row["status"], row["error_kind"], bool(row["retryable"])) == ("failed", "rejected", False)
    assert "HTTP 400" in row["error_message"]
    assert row["submit_attempts"] == 1


def test_bad_key_stops_the_run_but_every_row_is_reported(
    emu: Emulator, images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 401 fails the flow with a clear error after the manifest records every row."""
    monkeypatch.setenv("AIMLAPI_API_KEY", "wrong-key")
    csv = images / "many.csv"
    csv.write_text("image_url,prompt\n" + "".join(f"wide.png,Scene number {i}\n" for i in range(6)))
    with pytest.raises(AuthError, match="HTTP 401"):
        _run(csv, str(tmp_path / "out"), max_in_flight=1)
    frame = pd.read_parquet(tmp_path / "out" / "manifest.parquet")
    assert len(frame) == 6
    assert set(frame["status"]) == {"failed"}
    assert set(frame["error_kind"]) == {"auth"}
    assert emu.created() == 0
    assert emu.stats()["creates"] < 6, "the run stopped sending after the first 401"


def test_crash_after_submit_reattaches_instead_of_paying_twice(emu: Emulator, images: Path, tmp_path: Path) -> None:
    """A generation journaled by an earlier (crashed) run is picked up, not created again."""
    csv = _one_row(images)
    (row,) = read_rows(csv).rows
    dest = tmp_path / "out"
    offload = Offload(1)
    earlier = asyncio.run(submit(emu.api(), row, Journal(LocalDestination(dest), offload), AdmissionLimiter(1)))
    offload.close()
    _run(csv, str(dest))
    frame = pd.read_parquet(dest / "manifest.parquet")
    assert frame.loc[0, "status"] == "completed"
    assert frame.loc[0, "generation_id"] == earlier.generation_id
    assert emu.stats()["creates"] == 1


def test_artifacts_and_logs_never_hold_the_key(
    emu: Emulator, images: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The run publishes its summary, failure table, manifest link and progress (100 at the end); no key anywhere."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    csv = images / "two.csv"
    csv.write_text("image_url,prompt,duration\nwide.png,Sunrise over the bay,5\nwide.png,A forbidden gate,5\n")
    _run(csv, str(tmp_path / "out"))
    frame = pd.read_parquet(tmp_path / "out" / "manifest.parquet")
    shard_run_id = uuid.UUID(str(frame.loc[0, "flow_run_id"]))
    with get_client(sync_client=True) as client:
        shard_run = client.read_flow_run(shard_run_id)
        assert shard_run.parent_task_run_id is not None, "the shard is a subflow of the run"
        parent_id = client.read_task_run(shard_run.parent_task_run_id).flow_run_id
        assert parent_id is not None
        parent_run = client.read_flow_run(parent_id)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[parent_id]))
        )
    by_key = {a.key: a for a in artifacts}
    assert {"i2v-run-summary", "i2v-failed-rows", "i2v-manifest", "i2v-progress"} <= set(by_key)
    assert by_key["i2v-progress"].data == 100
    assert str(by_key["i2v-progress"].description).startswith("done: 2/2 rows, 1 completed, 0 skipped, 1 failed")
    assert "| 2 | 1 | 0 | 1 |" in str(by_key["i2v-run-summary"].data)
    assert "ContentModerationError" in json.dumps(by_key["i2v-failed-rows"].data)
    everything = "\n".join(
        [
            *(json.dumps(a.data) for a in artifacts),
            json.dumps(parent_run.parameters),
            json.dumps(shard_run.parameters),
            (tmp_path / "out" / "manifest.csv").read_text(),
            *(p.read_text() for p in (tmp_path / "out").rglob("*.json")),
            *capfd.readouterr(),
        ]
    )
    assert emu.api_key not in everything


def test_memory_is_bounded_by_shards_not_by_rows(images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """1,500 rows in shards of 150: never more than two shards' rows or outcomes alive, few task runs per shard."""
    import gc
    import threading

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from i2v.inputs.row import Row
    from i2v.outcomes import RowOutcome
    from orchestration import resources

    rows, shard_rows = 1500, 150
    csv = images / "many.csv"
    csv.write_text(
        "image_url,prompt,duration,resolution\n"
        + "".join(f"{('wide', 'tall')[i % 2]}.png,Frame {i} of the long take,5,480p\n" for i in range(rows))
    )
    peaks = {"rows": 0, "outcomes": 0, "held": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(1.0):
            live = gc.get_objects()
            peaks["rows"] = max(peaks["rows"], sum(isinstance(o, Row) for o in live))
            peaks["outcomes"] = max(peaks["outcomes"], sum(isinstance(o, RowOutcome) for o in live))
            del live
            for held in list(resources._engines.values()):
                peaks["held"] = max(peaks["held"], held.engine.progress.peak_rows_held)

    with emulator(generation_seconds=0.05, generation_jitter=0.0, max_concurrent=64, short_side=16, fps=1) as fast:
        monkeypatch.setenv("AIMLAPI_BASE_URL", fast.base_url)
        monkeypatch.setenv("AIMLAPI_API_KEY", fast.api_key)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            summary = _run(
                csv, str(tmp_path / "out"), rows_per_shard=shard_rows, max_in_flight=48, poll_interval_s=0.05
            )
        finally:
            done.set()
            sampler.join()
    assert summary["completed"] == rows
    frame = pd.read_parquet(tmp_path / "out" / "manifest.parquet", columns=["row_index", "flow_run_id"])
    assert frame["row_index"].tolist() == list(range(rows))
    assert 0 < peaks["held"] <= 2 * shard_rows
    assert 0 < peaks["rows"] <= 2 * shard_rows + 48, f"{peaks['rows']} rows alive at once"
    assert peaks["outcomes"] <= 2 * shard_rows + 48, f"{peaks['outcomes']} outcomes alive at once"
    shard_runs = [uuid.UUID(str(run)) for run in frame["flow_run_id"].unique()]
    assert len(shard_runs) == rows // shard_rows
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=shard_runs[:1])))
    assert len(task_runs) <= 20, "a shard is a handful of task runs, not one per row"


def test_mismatched_videos_are_noted_and_every_completed_row_is_exported(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Videos as asked carry no note; off-spec ones complete with one (manifest, report); metadata.jsonl loads."""
    import datasets

    from tests.test_report_page import records

    dest = tmp_path / "out"
    first, second = images / "first.csv", images / "second.csv"
    first.write_text(
        "id,image_url,prompt,model,duration,aspect_ratio,resolution\n"
        "wide,wide.png,Waves roll onto the shore,,10,16:9,480p\n"
        "plus,tall.png,Rain on the window,alibaba/wan2.2-i2v-plus,,,480P\n"
        "blocked,wide.png,A forbidden door,,5,,480p\n"
    )
    second.write_text(
        "id,image_url,prompt,duration,aspect_ratio,resolution\n"
        "tall,tall.png,A leaf falls,10,9:16,480p\n"
        "square,square.png,A top spins,5,1:1,480p\n"
    )
    for config, csv in (({"short_side": None}, first), ({"off_spec_rate": 1.0}, second)):
        with emulator(**config) as running:
            monkeypatch.setenv("AIMLAPI_BASE_URL", running.base_url)
            monkeypatch.setenv("AIMLAPI_API_KEY", running.api_key)
            _run(csv, str(dest))

    root = _by_id(pd.read_parquet(dest / "manifest.parquet"))
    assert root["wide"]["status"] == root["plus"]["status"] == "completed"
    assert [pd.isna(root[i]["mismatch"]) for i in ("wide", "plus")] == [True, True], "rendered as asked"
    assert root["tall"]["status"] == root["square"]["status"] == "completed", "a mismatch never fails the row"
    assert root["tall"]["mismatch"] == (
        "duration 10s asked, 5.0s got; aspect 9:16 asked, 16:9 got; resolution 480p asked, 64p got"
    )
    assert root["square"]["mismatch"] == (
        "duration 5s asked, 2.0s got; aspect 1:1 asked, 16:9 got; resolution 480p asked, 64p got"
    )
    page = {row["id"]: row for row in records((dest / "report.html").read_text())}
    assert page["tall"]["mismatch"] == root["tall"]["mismatch"], "the report flags the card"

    lines = [json.loads(line) for line in (dest / "metadata.jsonl").read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == ["plus", "square", "tall", "wide"], "both runs, completed only"
    for line in lines:
        assert (dest / line["file_name"]).is_file()
        assert line["file_name"] == f"videos/{line['id']}.mp4"
        assert line["row_key"] == root[line["id"]]["row_key"]
        assert line["mismatch"] == ("" if pd.isna(root[line["id"]]["mismatch"]) else root[line["id"]]["mismatch"])
        assert line["input_image"].startswith("inputs/"), "the input image, as its copy in the destination"
        assert (dest / line["input_image"]).is_file()
    wide = next(line for line in lines if line["id"] == "wide")
    assert (wide["duration"], wide["aspect_ratio"], wide["resolution"]) == (10, "16:9", "480p")
    assert (wide["width"], wide["height"], wide["duration_s"]) == (854, 480, 10.0)

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = datasets.load_dataset("videofolder", data_dir=str(dest), split="train", cache_dir=str(tmp_path / "hf"))
    # Not decoded: decoding needs torchcodec, which training code brings; the pairing is what is checked.
    loaded = loaded.cast_column("video", datasets.Video(decode=False))
    assert loaded.num_rows == 4
    assert {"video", "prompt", "model", "resolution", "duration", "seed", "mismatch", "input_image"} <= set(
        loaded.column_names
    )
    assert loaded.features["mismatch"].dtype == "string", "a column of text, even where no video differed"
    by_id = {row["id"]: row for row in loaded}
    assert Path(by_id["tall"]["video"]["path"]) == dest / "videos" / "tall.mp4"
    assert by_id["tall"]["prompt"] == "A leaf falls"
