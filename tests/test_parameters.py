"""Every flow that runs an input takes the same run settings, as flat Prefect parameters."""

from __future__ import annotations

import dataclasses

import pytest
from prefect.exceptions import ParameterTypeError
from prefect.utilities.callables import parameter_schema

from flows.fanout import fanout, shard_share
from flows.generate import generate_videos
from flows.inbox import inbox
from flows.rerun import rerun_failed
from i2v.engine.spec import RunSettings, RunSpec
from i2v.errors import ConfigError
from i2v.inputs.shards import Shard

SETTINGS = [field.name for field in dataclasses.fields(RunSettings)]


def _parameters(flow: object) -> list[str]:
    return list(parameter_schema(flow).properties)  # type: ignore[arg-type]


def test_every_flow_offers_every_run_setting_it_can_use() -> None:
    """generate-videos and fanout take all settings; rerun-failed and inbox all but the few they set themselves."""
    assert _parameters(generate_videos) == ["input", "dest", *SETTINGS]
    own = ["shard_deployment", "check_every_s", "shard_retries", "max_wait_s"]
    assert _parameters(fanout) == ["input", "dest", *SETTINGS, *own]
    rerun_own = ["manifest", "select", "kinds", "include_unknown"]
    assert _parameters(rerun_failed) == rerun_own + [
        name for name in SETTINGS if name not in ("retry", "resubmit_unknown", "input_format", "models")
    ]
    assert _parameters(inbox) == ["inbox", "dest", "max_files", "max_claims"] + [
        name for name in SETTINGS if name not in ("run_name", "input_format")
    ]


def test_a_setting_given_as_text_is_cast_and_a_wrong_one_names_the_parameter() -> None:
    """`-p max_credits=1000` arrives as text and is cast; a value outside a setting's choices is refused by name."""
    checked = fanout.validate_parameters({"input": "in.csv", "dest": "out", "max_credits": "1000"})
    assert checked["max_credits"] == 1000.0
    with pytest.raises(ParameterTypeError, match="retry"):
        generate_videos.validate_parameters({"input": "in.csv", "dest": "out", "retry": "sometimes"})


def test_settings_out_of_range_fail_when_built() -> None:
    """A failure ratio above 1, a negative budget or no rows per shard is a configuration error naming the setting."""
    with pytest.raises(ConfigError, match="max_failure_ratio"):
        RunSettings(max_failure_ratio=5)
    with pytest.raises(ConfigError, match="max_credits"):
        RunSettings(max_credits=-1)
    with pytest.raises(ConfigError, match="rows_per_shard"):
        RunSettings(rows_per_shard=0)


def test_the_run_spec_carries_every_setting() -> None:
    """Settings become the run's spec: row defaults gathered, caps and policies kept."""
    settings = RunSettings(resolution="480p", duration=5, max_credits=10.0, retry="all", max_failure_ratio=0.5)
    spec = settings.spec(name="r", input="in.csv", dest="out")
    assert spec.defaults == {"resolution": "480p", "duration": 5}
    assert (spec.max_credits, spec.retry, spec.max_failure_ratio) == (10.0, "all", 0.5)


def test_a_fanned_out_run_shares_its_spending_cap_among_shards_by_rows() -> None:
    """Each shard may spend its rows' part of max_credits, so the shards together stay under the cap."""
    run = RunSpec(name="r", input="in.csv", dest="out", max_credits=900.0)
    shards = [Shard(0, 0, 100, 0, 2), Shard(1, 100, 100, 10, 102), Shard(2, 200, 50, 20, 202)]
    shares = [shard_share(run, shard, 250).max_credits for shard in shards]
    assert shares == [360.0, 360.0, 180.0]
    assert shard_share(RunSpec(name="r", input="in.csv", dest="out"), shards[0], 250).max_credits is None
