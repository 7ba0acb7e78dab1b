"""On a GPU: under the Unsloth learner each row of a padded micro-batch has the logprobs it has alone.

    GPU_SMOKE_REQUIRED=1 python -m pytest -q -s -m gpu tests/gpu/test_unsloth_padding.py

Unsloth's training forward drops the attention mask (issue 15 finding 1): only a layout where a
mask-less causal forward is exact (right padding) keeps rows from attending to pad positions. The CPU
suite proves it for transformers + PEFT (tests/unit/learner/test_train_step.py); this is the same check
through FastLanguageModel, 16-bit and 4-bit, in train and eval mode.
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.gpu

SAMPLES_IDS = [((4, 5, 6), (7, 8, 9, 3)), ((4, 5), (10, 11, 3)), ((4, 12, 13, 14, 15), (16, 3)),
               ((4,), (17, 18, 19, 20, 3))]  # token ids of the tiny vocabulary (31 words), 3 = <eos>
MAX_MEAN_ABS = 0.01  # bf16 matmuls of other shapes differ a little; attending to pads differs by far more
MAX_ABS = 0.08


@pytest.mark.parametrize("train_mode", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("load_in_4bit", [False, True], ids=["bf16", "nf4"])
def test_padded_rows_equal_rows_alone_under_unsloth(need, gpu_model_dir, smoke_checks, record,
                                                    make_learner_config, make_random_adapter,
                                                    load_in_4bit: bool, train_mode: bool) -> None:
    need("unsloth")
    if load_in_4bit:
        need("bitsandbytes")
    from learner.grpo.train_step import TrainSample, collate, completion_logprobs
    from learner.policy.model import load_policy, set_adapter_state

    model, _ = load_policy(make_learner_config(gpu_model_dir, use_unsloth=True, load_in_4bit=load_in_4bit))
    modules = {type(m).forward.__module__ for m in model.modules()}
    assert any(m.startswith("unsloth") for m in modules), f"not loaded through Unsloth: forwards from {modules}"
    set_adapter_state(model, make_random_adapter(model, seed=2))
    model.train(train_mode)
    device = next(model.parameters()).device
    samples = [TrainSample(p, c, 1.0) for p, c in SAMPLES_IDS]
    with torch.no_grad():
        batched, _ = completion_logprobs(model, collate(samples, 0, device=device), use_attention_mask=False)
        alone = [completion_logprobs(model, collate([s], 0, device=device), use_attention_mask=False)[0][0]
                 for s in samples]
    rows = [batched[i, : len(s.completion_token_ids)].float().cpu().tolist() for i, s in enumerate(samples)]
    singles = [alone[i][: len(s.completion_token_ids)].float().cpu().tolist() for i, s in enumerate(samples)]
    gap = smoke_checks.logprob_gap(rows, singles)
    tag = f"unsloth_padding/{'nf4' if load_in_4bit else 'bf16'}/{'train' if train_mode else 'eval'}"
    record(f"{tag}/mean_abs_delta", gap.mean_abs)
    record(f"{tag}/max_abs_delta", gap.max_abs)
    assert gap.mean_abs < MAX_MEAN_ABS and gap.max_abs < MAX_ABS, gap
