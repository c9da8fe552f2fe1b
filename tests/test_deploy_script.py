"""deployments/deploy.py: what `make deploy` gives `prefect deploy`, and which deployments it deploys."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from tests.cluster import REPO


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("i2v_deploy_script", REPO / "deployments" / "deploy.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_schedules_are_active_only_when_their_input_and_destination_are_given() -> None:
    """A first deploy starts no paid work: each schedule is on only with both of its settings."""
    env = _script().settings(
        {"I2V_NIGHTLY_INPUT": "big.csv", "I2V_NIGHTLY_DEST": "s3://b/nightly", "I2V_INBOX": "s3://b/in"}
    )
    assert (env["I2V_NIGHTLY_ACTIVE"], env["I2V_NIGHTLY_INPUT"], env["I2V_NIGHTLY_DEST"]) == (
        "true",
        "big.csv",
        "s3://b/nightly",
    )
    assert (env["I2V_INBOX_ACTIVE"], env["I2V_INBOX"], env["I2V_INBOX_DEST"]) == ("false", "inbox", "out/inbox")
    assert (env["I2V_NIGHTLY_CRON"], env["I2V_CONCURRENCY_LIMIT"], env["I2V_PROVIDER_SLOTS"]) == (
        "0 2 * * *",
        "aimlapi",
        "16",
    )


def test_deployments_whose_flow_file_is_missing_are_skipped(tmp_path: Path) -> None:
    """A deployment whose entrypoint is not in the checkout (yet) is left out, not fatal."""
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "here.py").write_text("")
    (tmp_path / "prefect.yaml").write_text(
        "deployments:\n  - {name: a, entrypoint: 'flows/here.py:f'}\n  - {name: b, entrypoint: 'flows/missing.py:g'}\n"
    )
    assert _script().deployable(tmp_path / "prefect.yaml") == (["a"], ["b"])


def test_every_deployment_in_prefect_yaml_is_deployable_from_this_checkout() -> None:
    """The repository's prefect.yaml names flow files that exist, so `make deploy` deploys them all."""
    ready, missing = _script().deployable(REPO / "prefect.yaml")
    assert missing == []
    assert {"nightly", "fanout", "generate-shard", "inbox", "rerun-failed"} <= set(ready)


def test_runs_are_crashed_when_their_heartbeats_stop_for_the_set_time() -> None:
    """The lost-run automation expects a heartbeat or an end within the setting, for this project's runs only."""
    automation = _script().lost_run_automation(75.0)
    trigger = automation.trigger
    assert trigger.posture.value == "Proactive"
    assert trigger.within.total_seconds() == 75.0
    # Pending arms it too: a worker lost between taking a run and starting it leaves no heartbeat.
    assert trigger.after == {
        "prefect.flow-run.heartbeat",
        "prefect.flow-run.Pending",
        "prefect.flow-run.Running",
        "prefect.flow-run.Cancelling",
    }
    ended = {"prefect.flow-run.Completed", "prefect.flow-run.Completed with failures", "prefect.flow-run.Crashed"}
    assert {"prefect.flow-run.heartbeat", *ended} <= trigger.expect
    assert trigger.match_related.model_dump() == {
        "prefect.resource.id": "prefect.tag.i2v",
        "prefect.resource.role": "tag",
    }
    (action,) = automation.actions
    assert (action.type, action.state.value) == ("change-flow-run-state", "CRASHED")


def test_the_code_folder_is_the_clone_or_i2v_home_and_anything_else_is_named(tmp_path: Path) -> None:
    """The pull step finds the project without a setting on a clone; a wrong I2V_HOME is one clear error."""
    from i2v.errors import ConfigError
    from orchestration.code_folder import find_code_folder

    assert find_code_folder({}) == REPO
    assert find_code_folder({"I2V_HOME": str(REPO)}) == REPO
    with pytest.raises(ConfigError, match=f"I2V_HOME={tmp_path} is not a copy of i2v-pipeline"):
        find_code_folder({"I2V_HOME": str(tmp_path)})
