"""Two RolloutActors on a local Ray cluster: prompts split and gathered in order, weight push, a killed actor."""

from __future__ import annotations

import time

import pytest
import torch
from peft import get_peft_model_state_dict

from actors.engines.config import RolloutConfig
from actors.engines.hf import HFEngine
from learner.policy.tiny import build_tiny_model, build_tiny_tokenizer
from reward_service.contracts import LoraSpec

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.integration

PROMPTS = ["Goal: on a b\nPlan:\n", "Goal: on b c\nPlan:\n", "Plan:\n", "Goal: on c a, on a b\nPlan:\n", "Goal:\n"]
IDS = [f"bw:{i}" for i in range(len(PROMPTS))]
LORA = {"lora": LoraSpec(rank=4, alpha=8.0, target_modules=("q_proj", "v_proj"))}
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
        # Per-prompt temperatures are split with the chunks (a wrong slice would raise in the engine) and a
        # redone chunk gets its own slice again: all near zero, so every row is the greedy completion.
        pending = group.submit(PROMPTS, IDS, policy_version=1, temperature=[1e-5 * (i + 1) for i in range(5)])
        ray.kill(group.actors[1], no_restart=False)
        assert [c.token_ids for c in pending.result()] == [c.token_ids for c in after]
        with pytest.raises(ValueError, match="got 4 temperatures for 5 prompts"):
            group.submit(PROMPTS, IDS, temperature=[1.0] * 4)
    finally:
        group.shutdown()


def test_a_weight_push_does_not_wait_behind_a_running_generate_and_versions_stay_exact(cluster, model_path) -> None:
    """The push runs on the actor's weights thread: it returns while a long generate runs; that generate keeps
    the weights it started with, and the engine loads the pushed version before its next call."""
    from actors.rollout import RolloutGroup

    config = CONFIG.model_copy(update={"num_actors": 1, "num_generations": 4, "max_new_tokens": 64,
                                       "temperature": 1.0, "batch_size": 4})
    group = RolloutGroup(model_path, config, engine_kwargs=LORA, name_prefix="rollout-push")
    try:
        actor = group.actors[0]
        ray.get(actor.version.remote())  # started
        long = group.submit(PROMPTS * 4, [f"bw:{i}" for i in range(20)])  # 20 HF generate calls of 4 rows
        queued = group.submit(PROMPTS, IDS, policy_version=0)  # waits behind `long`, starts after the push
        deadline = time.monotonic() + 120
        while ray.get(actor.timings.remote())["generating_s"] == 0.0:  # answered while generate runs
            assert time.monotonic() < deadline, "the generate call never started"
            time.sleep(0.05)
        group.update_weights(_new_lora(model_path, 2), 1)  # returns once staged
        _, running = ray.wait(long.refs(), timeout=0)
        assert running, "the push waited for the generate call to finish"
        out = long.result()
        assert {c.policy_version for c in out} == {0}  # the running call kept its weights
        assert {c.policy_version for c in queued.result()} == {0}  # asked for v0, started after v1 came: v0
        assert group.versions() == [1]
        after = group.generate(PROMPTS, IDS, policy_version=1)
        assert {c.policy_version for c in after} == {1}
        calls = [(call, version) for call, version, _ in ray.get(actor.history.remote())]
        assert calls[-5:] == [("push", 1), ("generate", 0), ("generate", 0), ("load_weights", 1), ("generate", 1)]
        timings = ray.get(actor.timings.remote())
        assert timings["calls"] == 3 and timings["generate_s"] > 0 and timings["load_weights_s"] > 0
    finally:
        group.shutdown()


def test_chunks_are_scored_as_they_arrive_in_prompt_order_exactly_once_with_a_slow_actor(cluster, model_path):
    """Streaming scoring (learner.driver.loop.score_as_generated) with R=2 actors of unequal speed: actor 0 is busy
    with a long job first, so actor 1's chunk arrives and is scored first; completions and scores still come
    back in prompt order, each chunk scored once, the same scores as scoring the whole step at once."""
    from pathlib import Path

    from actors.rollout import RolloutGroup
    from learner.driver.loop import score_as_generated
    from reward_service.config import RewardConfig
    from reward_service.scoring import RewardScorer

    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "pddl"
    config = CONFIG.model_copy(update={"num_generations": 2, "temperature": 1.0, "max_new_tokens": 8})
    group = RolloutGroup(model_path, config, engine_kwargs=LORA, name_prefix="rollout-stream")
    try:
        ray.get([a.version.remote() for a in group.actors])  # both started
        slow = group.actors[0].generate.remote(PROMPTS * 6, [f"slow:{i}" for i in range(30)], 4)
        ids = [f"ferry:{i}" for i in range(len(PROMPTS))]
        samples = [{"sample_id": i, "domain": "ferry",
                    "meta": {"domain_file": "ferry/domain.pddl", "problem_file": "ferry/p01.pddl"}} for i in ids]
        expanded = [s for s in samples for _ in range(2)]
        scorer = RewardScorer(RewardConfig(validator="native"), fixtures)
        calls: list[list[str]] = []

        def score(completions, pool_samples):
            calls.append([c.sample_id for c in completions])
            return scorer.score(completions, pool_samples)

        completions, scores, wait_s, score_s = score_as_generated(group.submit(PROMPTS, ids), score, expanded)
        ray.get(slow)
        assert [c.sample_id for c in completions] == [s["sample_id"] for s in expanded]
        assert [s.sample_id for s in scores] == [c.sample_id for c in completions]
        first_of_actor_1 = ids[len(PROMPTS) // 2]
        assert calls[0][0] == first_of_actor_1, calls  # the fast actor's chunk was scored first
        assert sorted(i for call in calls for i in call) == sorted(c.sample_id for c in completions)  # once each
        whole = RewardScorer(RewardConfig(validator="native"), fixtures).score(completions, expanded)
        assert [(s.label, s.reward) for s in scores] == [(s.label, s.reward) for s in whole]
        assert wait_s > 0 and score_s > 0
    finally:
        group.shutdown()
