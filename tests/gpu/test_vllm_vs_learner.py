"""On a GPU: vLLM's behaviour logprobs equal the learner's forward, adapter versions swap, a 4-bit learner's gap.

    GPU_SMOKE_REQUIRED=1 python -m pytest -q -s -m gpu tests/gpu/test_vllm_vs_learner.py

Both sides load the tiny base in the learner's dtype (bf16 where the GPU has it). The mean |delta| bound
(0.02) is what keeps importance weights near 1 in a run: a larger gap means the engine samples another
policy than the learner trains (wrong dtype, a dropped adapter, a mis-mapped LoRA layer, vLLM's
processed instead of raw logprobs).
"""

from __future__ import annotations

import pytest
import torch

from reward_service.contracts import LoraSpec

pytestmark = pytest.mark.gpu
G = 4


@pytest.fixture(scope="module")
def engine(need, gpu_model_dir, tmp_path_factory):
    need("vllm")
    from actors.engines.config import RolloutConfig
    from actors.engines.vllm import VLLMEngine

    cfg = RolloutConfig(engine="vllm", num_generations=G, max_new_tokens=16, temperature=1.0, top_p=1.0, top_k=0,
                        seed=7)
    eng = VLLMEngine(str(gpu_model_dir), cfg, lora=LoraSpec(rank=8, alpha=16.0), gpu_memory_utilization=0.2,
                     max_model_len=256, adapter_root=tmp_path_factory.mktemp("adapters"))
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def learner(gpu_model_dir, make_learner_config):
    from learner.policy.model import load_policy

    model, _ = load_policy(make_learner_config(gpu_model_dir))
    assert next(model.parameters()).is_cuda
    return model.eval()


def _learner_logprobs(model, completions) -> list[list[float]]:
    from learner.grpo.train_step import collate, completion_logprobs, samples_from_completions

    samples = samples_from_completions(completions, [0.0] * len(completions))
    batch = collate(samples, pad_id=0, device=next(model.parameters()).device)
    with torch.no_grad():
        lp, _ = completion_logprobs(model, batch)
    return [lp[i, : len(c.token_ids)].float().cpu().tolist() for i, c in enumerate(completions)]


def _gap(engine, model, prompts, smoke_checks):
    completions = engine.generate(prompts, [f"p:{i}" for i in range(len(prompts))])
    assert len(completions) == G * len(prompts)
    return smoke_checks.logprob_gap([list(c.logprobs) for c in completions], _learner_logprobs(model, completions))


def test_behaviour_logprobs_equal_the_learners_forward(engine, learner, prompts, smoke_checks, record,
                                                       make_random_adapter) -> None:
    from learner.policy.model import get_adapter_state, set_adapter_state

    base = _gap(engine, learner, prompts, smoke_checks)  # version 0: no adapter on either side (B = 0)
    record("vllm_vs_learner/base/mean_abs_delta", base.mean_abs)
    record("vllm_vs_learner/base/max_abs_delta", base.max_abs)
    set_adapter_state(learner, make_random_adapter(learner, seed=1))
    engine.update_weights(get_adapter_state(learner), version=1)
    adapted = _gap(engine, learner, prompts, smoke_checks)
    record("vllm_vs_learner/adapter/mean_abs_delta", adapted.mean_abs)
    record("vllm_vs_learner/adapter/max_abs_delta", adapted.max_abs)
    assert base.mean_abs < smoke_checks.MAX_MEAN_ABS_GAP, base
    assert adapted.mean_abs < smoke_checks.MAX_MEAN_ABS_GAP, adapted


def test_adapter_versions_swap_and_only_the_newest_stays_loaded(engine, learner, prompts, record,
                                                                make_random_adapter) -> None:
    greedy = {}
    start = engine.version
    for version in (start + 1, start + 2, start + 3):
        engine.update_weights(make_random_adapter(learner, seed=10 + version, scale=1.0), version=version)
        loaded = set(engine.llm.llm_engine.list_loras())  # a list over IPC
        record(f"vllm/adapters_loaded_after_v{version}", len(loaded))
        assert loaded == {version + 1}, f"after pushing v{version} vLLM holds LoRA ids {sorted(loaded)}"
        out = engine.generate(prompts[:1], ["p:0"], num_generations=1, temperature=0.0, policy_version=version)
        assert out[0].policy_version == version
        greedy[version] = out[0].token_ids
    assert len(set(greedy.values())) > 1, "three different adapters gave the same greedy output: adapters ignored"


def test_4bit_learner_gap_to_the_16bit_engine_is_measured(need, engine, gpu_model_dir, prompts, smoke_checks,
                                                          record, make_learner_config) -> None:
    # issue 15 finding 7: the engine samples from the bf16 base, a 4-bit learner trains the NF4 one;
    # importance weights correct the gap. Measured here, not bounded: a tiny random model says little of a 7B.
    need("bitsandbytes")
    from learner.policy.model import get_adapter_state, load_policy

    model, _ = load_policy(make_learner_config(gpu_model_dir, load_in_4bit=True))
    assert any(type(m).__name__ == "Linear4bit" for m in model.modules()), "load_in_4bit loaded no Linear4bit"
    engine.update_weights(get_adapter_state(model), version=engine.version + 1)  # B = 0: the base on both sides
    gap = _gap(engine, model.eval(), prompts, smoke_checks)
    record("vllm_bf16_vs_learner_nf4/mean_abs_delta", gap.mean_abs)
    record("vllm_bf16_vs_learner_nf4/max_abs_delta", gap.max_abs)
    assert gap.tokens > 0 and gap.max_abs == gap.max_abs  # finite
