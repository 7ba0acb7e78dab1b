"""LearnerActor on a local Ray cluster: a train step moves the LoRA weights; adapter state, save and load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from learner.config.learner import LearnerConfig
from learner.grpo.train_step import TrainSample

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.integration

SAMPLES = [TrainSample((2, 3, 4), (5, 6, 7, 1), 1.0, behaviour_logprobs=(-3.9, -3.8, -3.9, -3.7)),
           TrainSample((2, 3), (8, 9, 1), -1.0)]


@pytest.fixture(scope="module")
def learner(cluster, tiny_dir: Path):
    from actors.learner import create_learner_actor

    cfg = LearnerConfig(base_model=str(tiny_dir), lora_rank=4, learning_rate=1e-2, use_gradient_checkpointing=False)
    actor = create_learner_actor(cfg, num_cpus=1, num_training_steps=10)
    yield actor
    ray.kill(actor)


def test_named_actor_with_passive_threads(learner) -> None:
    assert ray.get_actor("learner") is not None
    env = ray.get(learner.__ray_call__.remote(lambda self: (self.num_threads, __import__("os").environ.get(
        "OMP_WAIT_POLICY"), __import__("torch").get_num_threads())))
    assert env == (1, "PASSIVE", 1)


def test_train_step_changes_lora_weights_only(learner) -> None:
    version0, before = ray.get(learner.get_adapter_state.remote())
    assert before and all("lora_" in k for k in before)
    metrics = ray.get(learner.train_step.remote(SAMPLES))
    version1, after = ray.get(learner.get_adapter_state.remote())
    assert version1 == version0 + 1 == ray.get(learner.version.remote())
    assert set(after) == set(before)
    assert any(not torch.equal(after[k], before[k]) for k in after)
    assert metrics["tokens"] == 7 and metrics["grad_norm"] > 0 and "is_weight/mean" in metrics


def test_save_and_load_restore_version_and_extra(learner, tmp_path: Path) -> None:
    path = ray.get(learner.save.remote(str(tmp_path), 5, {"sampler": {"cursor": 7}, "step": 5}, 2))
    version, state = ray.get(learner.get_adapter_state.remote())
    ray.get(learner.train_step.remote(SAMPLES))
    restored = ray.get(learner.load.remote(path))
    assert restored["sampler"] == {"cursor": 7} and restored["step"] == 5 and restored["version"] == version
    version2, state2 = ray.get(learner.get_adapter_state.remote())
    assert version2 == version
    assert all(torch.equal(state2[k], state[k]) for k in state)
    assert ray.get(learner.load.remote("auto", str(tmp_path / "elsewhere"))) is None
