"""Two RolloutActors on a local Ray cluster: prompts split and gathered in order, weight push, a killed actor."""

from __future__ import annotations

import pytest
import torch
from peft import get_peft_model_state_dict

from actors.engines.config import RolloutConfig
from actors.engines.hf import HFEngine
from learner.tiny import build_tiny_model, build_tiny_tokenizer

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.integration

PROMPTS = ["Goal: on a b\nPlan:\n", "Goal: on b c\nPlan:\n", "Plan:\n", "Goal: on c a, on a b\nPlan:\n", "Goal:\n"]
IDS = [f"bw:{i}" for i in range(len(PROMPTS))]
LORA = {"lora_rank": 4, "lora_alpha": 8.0, "lora_target_modules": ["q_proj", "v_proj"]}
CONFIG = RolloutConfig(num_actors=2, num_generations=2, max_new_tokens=8, temperature=0, num_cpus_per_actor=1)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    tok = build_tiny_tokenizer(PROMPTS + ["(unstack a b)\n(putdown a)"])
    return build_tiny_model(tok, tmp_path_factory.mktemp("tiny"), layers=2, hidden=64, ffn=128, seed=5)


def _new_lora(model_path, seed: int) -> dict[str, torch.Tensor]:
    local = HFEngine(model_path, CONFIG, **LORA)
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) * 0.5 for k, v in get_peft_model_state_dict(local.model).items()}


def test_two_actors_generate_in_order_take_weights_and_survive_a_kill(cluster, model_path) -> None:
    from actors.rollout import RolloutGroup

    group = RolloutGroup(model_path, CONFIG, engine_kwargs=LORA, name_prefix="rollout-test")
    try:
        assert ray.get_actor("rollout-test-0") is not None and ray.get_actor("rollout-test-1") is not None
        pids = ray.get([a.pid.remote() for a in group.actors])
        assert len(set(pids)) == 2

        local = HFEngine(model_path, CONFIG, **LORA)
        out = group.generate(PROMPTS, IDS)
        assert [c.sample_id for c in out] == [s for s in IDS for _ in range(2)]
        assert [c.token_ids for c in out] == [c.token_ids for c in local.generate(PROMPTS, IDS)]

        state = _new_lora(model_path, 1)
        group.update_weights(state, 1)
        assert group.versions() == [1, 1]
        after = group.generate(PROMPTS, IDS, policy_version=1)
        assert all(c.policy_version == 1 for c in after)
        assert [c.token_ids for c in after] != [c.token_ids for c in out]
        local.update_weights(state, 1)
        assert [c.token_ids for c in after] == [c.token_ids for c in local.generate(PROMPTS, IDS)]

        # Kill one actor mid-step: Ray restarts it, the group pushes version 1 again and redoes its chunk.
        pending = group.submit(PROMPTS, IDS, policy_version=1)
        ray.kill(group.actors[0], no_restart=False)
        redone = pending.result()
        assert [c.token_ids for c in redone] == [c.token_ids for c in after]
        assert all(c.policy_version == 1 for c in redone)
        # Had actor 0 finished before the kill, it is back on version 0 now: asking for version 1
        # makes the group push the weights again instead of failing.
        assert [c.token_ids for c in group.generate(PROMPTS, IDS, policy_version=1)] == [c.token_ids for c in after]
        assert group.versions() == [1, 1]
        assert ray.get(group.actors[0].pid.remote()) != pids[0]
    finally:
        group.shutdown()
