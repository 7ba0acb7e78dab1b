"""LearnerGroup on a local Ray: two gloo ranks take the same update as one learner on the whole batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from learner.config.learner import LearnerConfig
from learner.grpo.train_step import TrainSample

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]

# three GRPO groups of uneven length: two ranks get 2 and 1 groups, so a rank-local loss
# normalisation (per-rank sequence or token counts) would give a different update
SAMPLES = [
    TrainSample((2, 3, 4), (5, 6, 7, 1), 1.0, behaviour_logprobs=(-3.9, -3.8, -3.9, -3.7), group=0),
    TrainSample((2, 3, 4), (8, 9, 1), -1.0, behaviour_logprobs=(-3.7, -3.9, -3.8), group=0),
    TrainSample((2, 10, 11, 12, 13), (14, 15, 16, 17, 18, 19, 1), 0.7, group=1),
    TrainSample((2, 10, 11, 12, 13), (20, 1), -0.7, group=1),
    TrainSample((2, 21), (22, 23, 24, 25, 26, 1), 0.5, group=2),
    TrainSample((2, 21), (27, 28, 1), -0.5, group=2),
]


def _config(tiny_dir: Path, loss_type: str) -> LearnerConfig:
    return LearnerConfig(base_model=str(tiny_dir), lora_rank=4, learning_rate=1e-3, beta=0.05,
                         use_gradient_checkpointing=False, loss_type=loss_type, max_completion_length=8,
                         gradient_accumulation_steps=2)


def _single_learner(cfg: LearnerConfig):
    from learner.grpo.train_step import GRPOTrainerCore
    from learner.policy.model import load_policy

    model, tok = load_policy(cfg)
    return GRPOTrainerCore(model, tok, cfg, num_training_steps=10)


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert set(a) == set(b)
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo"])
def test_two_gloo_ranks_equal_one_learner_on_the_full_batch(cluster, tiny_dir: Path, tmp_path: Path,
                                                            loss_type: str) -> None:
    from actors.learner_group import LearnerGroup
    from learner.policy.model import get_adapter_state

    cfg = _config(tiny_dir, loss_type)
    group = LearnerGroup(cfg, num_ranks=2, num_cpus=1, num_training_steps=10, name=f"dp-{loss_type}")
    try:
        assert group.backend == "gloo" and group.size == 2
        assert [len(s) for s in group.shard(SAMPLES)] == [2, 4]  # group 1 (19 tokens) | groups 0 and 2 (13 + 13)
        one = _single_learner(cfg)
        _, start = group.get_adapter_state()
        assert _max_difference(start, get_adapter_state(one.model)) == 0.0
        for _ in range(2):
            merged = group.train_step(SAMPLES)
            alone = one.step(SAMPLES)
            assert merged["loss"] == pytest.approx(alone["loss"], rel=1e-4, abs=1e-6)
            assert merged["grad_norm"] == pytest.approx(alone["grad_norm"], rel=1e-4)
            assert merged["tokens"] == alone["tokens"] and merged["num_sequences"] == len(SAMPLES)
            assert merged["kl"] == pytest.approx(alone["kl"], rel=1e-3, abs=1e-7)
            assert merged["data_parallel/ranks"] == 2.0
        version, state = group.get_adapter_state()
        assert version == group.version() == one.version == 2
        assert _max_difference(state, start) > 1e-3  # the update moved the weights
        assert _max_difference(state, get_adapter_state(one.model)) < 1e-5
        assert group.max_weight_difference() == 0.0  # every rank applied the same reduced gradient

        # a single group: rank 1's shard is empty, it still joins the all-reduce with zero gradients
        assert [len(s) for s in group.shard(SAMPLES[:2])] == [2, 0]
        group.train_step(SAMPLES[:2])
        one.step(SAMPLES[:2])
        assert _max_difference(group.get_adapter_state()[1], get_adapter_state(one.model)) < 1e-5
        assert group.max_weight_difference() == 0.0

        # rank 0 writes the checkpoint, every rank loads it back
        path = group.save(str(tmp_path), 3, {"step": 3})
        _, saved = group.get_adapter_state()
        group.train_step(SAMPLES)
        assert group.load(path)["version"] == 3
        assert _max_difference(group.get_adapter_state()[1], saved) == 0.0
        assert group.max_weight_difference() == 0.0
    finally:
        group.shutdown()
