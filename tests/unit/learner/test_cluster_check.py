"""learner.driver.pipeline._check_cluster: a local Ray too small for the config stops the run before any model loads
(issue 19: `cluster.num_cpus=1` waited forever with no output); a joined cluster only warns (it may grow)."""

from __future__ import annotations

import logging

import pytest

from actors import scheduling
from actors.scheduling import ActorsNotPlacedError
from learner.config.run import load_config
from learner.driver.pipeline import _check_cluster


@pytest.fixture
def one_cpu(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    ray = pytest.importorskip("ray")
    calls: list[str] = []
    monkeypatch.setattr(scheduling, "resources_now", lambda: ({"CPU": 1.0}, {"CPU": 1.0}))
    monkeypatch.setattr(ray, "shutdown", lambda: calls.append("shutdown"))
    return calls


def test_a_local_ray_too_small_stops_the_run_with_what_is_missing(one_cpu: list[str]) -> None:
    cfg = load_config(None, ["cluster.num_cpus=1", "reward.worker_resource=reward_node"])
    with pytest.raises(ActorsNotPlacedError) as err:
        _check_cluster(cfg, local=True)
    message = str(err.value)
    assert "the run needs 4 CPUs (learner, rollout, reward, sampler), the cluster has 1" in message
    assert "reward.worker_resource 'reward_node'" in message and "the cluster has 0" in message
    assert one_cpu == ["shutdown"]


def test_a_joined_cluster_only_warns(one_cpu: list[str], caplog: pytest.LogCaptureFixture) -> None:
    cfg = load_config(None, ["reward.worker_resource=reward_node"])
    with caplog.at_level(logging.WARNING, logger="pddl_grpo.pipeline"):
        _check_cluster(cfg, local=False)
    assert "reward_node" in caplog.text and "placement_timeout_s=300" in caplog.text
    assert one_cpu == []


def test_a_config_that_fits_passes_silently(monkeypatch: pytest.MonkeyPatch, one_cpu: list[str]) -> None:
    monkeypatch.setattr(scheduling, "resources_now", lambda: ({"CPU": 8.0}, {"CPU": 8.0}))
    _check_cluster(load_config(None, []), local=True)
    assert one_cpu == []
