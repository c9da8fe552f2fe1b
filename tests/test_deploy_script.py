"""deployments/deploy.py: what `make deploy` gives `prefect deploy`, and which deployments it deploys."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

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
