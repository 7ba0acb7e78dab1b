"""On a GPU: vLLM sleep mode frees most of the engine's memory, and wake_up restores identical greedy outputs.

    GPU_SMOKE_REQUIRED=1 python -m pytest -q -s -m gpu tests/gpu/test_vllm_sleep.py

Colocated mode depends on both: the learner trains in the memory the sleeping engine gave back, and
the engine must generate as before once awake (weights restored bit for bit; the adapter pushed again).
"""

from __future__ import annotations

import pytest
import torch

from reward_service.contracts import LoraSpec

pytestmark = pytest.mark.gpu


def test_sleep_frees_the_engines_memory_and_wake_restores_greedy_outputs(
        need, gpu_model_dir, prompts, tmp_path, smoke_checks, record, make_learner_config,
        make_random_adapter) -> None:
    need("vllm")
    from actors.engines.config import RolloutConfig
    from actors.engines.vllm import VLLMEngine
    from learner.policy.model import load_policy

    torch.cuda.init()
    torch.cuda.synchronize()
    free_before = torch.cuda.mem_get_info()[0]  # device-wide: vLLM's engine runs in its own process
    cfg = RolloutConfig(engine="vllm", num_generations=1, max_new_tokens=16, temperature=0.0, top_k=0, seed=3,
                        enable_sleep_mode=True)
    engine = VLLMEngine(str(gpu_model_dir), cfg, lora=LoraSpec(rank=8, alpha=16.0), gpu_memory_utilization=0.3,
                        max_model_len=256, adapter_root=tmp_path / "adapters")
    try:
        free_awake = torch.cuda.mem_get_info()[0]
        ids = [f"p:{i}" for i in range(len(prompts))]
        base_before = [c.token_ids for c in engine.generate(prompts, ids)]
        learner, _ = load_policy(make_learner_config(gpu_model_dir, use_gradient_checkpointing=False))
        adapter = make_random_adapter(learner, seed=5, scale=1.0)
        del learner
        torch.cuda.empty_cache()
        engine.update_weights(adapter, version=1)
        adapted_before = [c.token_ids for c in engine.generate(prompts, ids)]
        free_awake = min(free_awake, torch.cuda.mem_get_info()[0])

        engine.sleep()
        free_asleep = torch.cuda.mem_get_info()[0]
        engine.wake_up()
        adapted_after = [c.token_ids for c in engine.generate(prompts, ids)]
        engine.update_weights(adapter, version=2)  # what the loop does after each wake: push the adapter
        adapted_pushed = [c.token_ids for c in engine.generate(prompts, ids)]

        gib = 2**30
        share = smoke_checks.sleep_freed_share(free_before, free_awake, free_asleep)
        record("vllm_sleep/engine_memory_gib", (free_before - free_awake) / gib)
        record("vllm_sleep/freed_gib", (free_asleep - free_awake) / gib)
        record("vllm_sleep/freed_share", share)
        record("vllm_sleep/greedy_equal_after_wake", float(adapted_after == adapted_before))
        record("vllm_sleep/greedy_equal_after_wake_and_push", float(adapted_pushed == adapted_before))
        assert share >= smoke_checks.MIN_SLEEP_FREED_SHARE, (
            f"sleep gave back {share:.2f} of the engine's {(free_before - free_awake) / gib:.1f} GiB")
        assert adapted_before != base_before, "the adapter did not change the greedy outputs"
        assert adapted_pushed == adapted_before, "greedy outputs changed across sleep/wake and the adapter push"
    finally:
        engine.close()
