"""A NaN/inf loss, gradient or adapter weight stops training with the step and the cause (issue 19 item 6).

On the real tiny model (tests/conftest.py tiny_dir): a poisoned batch (a NaN advantage) and a learning rate
that overflows float32 in the AdamW update. Before issue 19 both returned metrics and the run went on
(exit 0) with a NaN adapter or every later update silently dropped.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from learner.config.learner import LearnerConfig
from learner.grpo.train_step import GRPOTrainerCore, NonFiniteTrainingError, TrainSample
from learner.policy.model import get_adapter_state, load_policy

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BATCH = [TrainSample((2, 3, 4), (5, 6, 7, 1), 1.0), TrainSample((2, 3), (8, 9, 1), -1.0)]


def _core(tiny_dir: Path, **kw) -> GRPOTrainerCore:
    cfg = LearnerConfig(base_model=str(tiny_dir), lora_rank=4, use_gradient_checkpointing=False, beta=0.0, **kw)
    model, tok = load_policy(cfg)
    return GRPOTrainerCore(model, tok, cfg, num_training_steps=10)


def test_a_poisoned_batch_stops_at_its_step_and_leaves_the_adapter_as_it_was(tiny_dir: Path) -> None:
    core = _core(tiny_dir, learning_rate=1e-3)
    core.step(BATCH)  # step 0 is fine
    before = {k: v.clone() for k, v in get_adapter_state(core.model).items()}
    poisoned = [TrainSample((2, 3, 4), (5, 6, 7, 1), math.nan), BATCH[1]]
    with pytest.raises(NonFiniteTrainingError, match=r"^optimizer step 1: the loss is nan \(not finite\); no update"):
        core.step(poisoned)
    after = get_adapter_state(core.model)
    assert all(torch.equal(before[k], after[k]) for k in before) and core.version == 1


def test_a_learning_rate_that_overflows_stops_within_two_steps_with_the_cause(tiny_dir: Path) -> None:
    core = _core(tiny_dir, learning_rate=3e37)  # finite, so the config accepts it; the weights blow up
    with pytest.raises(NonFiniteTrainingError) as info:
        for _ in range(3):
            core.step(BATCH)
    assert core.version <= 1, "the run went on past a blown-up adapter"
    assert info.value.reason.startswith(f"optimizer step {core.version}: ")
    assert any(cause in info.value.reason for cause in ("the loss is", "the gradient norm is", "adapter weight"))


def test_an_infinite_gradient_stops_before_the_update(tiny_dir: Path) -> None:
    core = _core(tiny_dir, learning_rate=1e-3)
    huge = [TrainSample(s.prompt_token_ids, s.completion_token_ids, s.advantage * 1e38) for s in BATCH]
    with pytest.raises(NonFiniteTrainingError, match=r"optimizer step 0: the (gradient norm is (inf|nan)|loss is)"):
        core.step(huge)


def test_the_error_survives_ray_pickling_with_its_reason() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(NonFiniteTrainingError("optimizer step 3: the loss is nan")))
    assert isinstance(err, NonFiniteTrainingError) and err.reason == "optimizer step 3: the loss is nan"
