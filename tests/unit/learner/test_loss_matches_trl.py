"""Our grpo_loss equals TRL GRPOTrainer._compute_loss on identical inputs, for every loss type, to 1e-5.

TRL's real code path runs: a GRPOTrainer is built on the same tiny PEFT model, and its
`_compute_loss` does its own forward (fused LM head, temperature) on the same weights. Our side
computes logprobs with `completion_logprobs` and the loss with `grpo_loss`. Loss values,
LoRA gradients and the kl / clip-ratio metrics must agree.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from learner.config.learner import LearnerConfig
from learner.grpo.loss import grpo_loss, importance_weights
from learner.grpo.train_step import TrainSample, collate, completion_logprobs
from learner.policy.model import load_policy

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

TEMPERATURE = 0.7
MAX_COMPLETION = 6


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def policy(tiny_dir: Path):
    # fresh per test: with beta > 0 TRL adds a "ref" adapter to the PEFT model it is given
    path = tiny_dir
    cfg = LearnerConfig(base_model=str(path), lora_rank=4, use_gradient_checkpointing=False)
    model, tok = load_policy(cfg)
    torch.manual_seed(1)
    with torch.no_grad():  # a nonzero adapter, so that policy and reference differ
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.3)
    return model, tok


def _trainer(model, tok, tmp_path: Path, loss_type: str, beta: float, delta: float | None):
    args = trl.GRPOConfig(
        output_dir=str(tmp_path / "trl"), per_device_train_batch_size=4, num_generations=2, loss_type=loss_type,
        beta=beta, epsilon=0.2, epsilon_high=0.28, delta=delta, max_completion_length=MAX_COMPLETION,
        temperature=TEMPERATURE, report_to=[], use_cpu=True, bf16=False, gradient_checkpointing=False,
    )
    dataset = datasets.Dataset.from_dict({"prompt": ["w1 w2"] * 4})
    trainer = trl.GRPOTrainer(model=model, reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
                              args=args, train_dataset=dataset, processing_class=tok)
    trainer.current_gradient_accumulation_steps = 1
    trainer.model.train()
    return trainer


SAMPLES = [  # different prompt lengths, completion lengths and advantage signs
    TrainSample((3, 4, 5), (6, 7, 8, 9, 1), 1.3),
    TrainSample((3, 4), (10, 11, 1), -0.7),
    TrainSample((12, 4, 5, 13), (14, 15, 16, 17, 18, 19), 0.4),
    TrainSample((3,), (20, 1), -1.1),
]


def _batch():
    return collate(SAMPLES, pad_id=0)  # our layout: prompt + completion per row, right-padded


def _trl_prompts() -> tuple[torch.Tensor, torch.Tensor]:
    """TRL's own layout of the same prompts: left-padded, with their mask."""
    width = max(len(s.prompt_token_ids) for s in SAMPLES)
    ids = torch.zeros((len(SAMPLES), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(SAMPLES):
        ids[i, width - len(s.prompt_token_ids):] = torch.tensor(s.prompt_token_ids)
        mask[i, width - len(s.prompt_token_ids):] = 1
    return ids, mask


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo", "bnpo"])
@pytest.mark.parametrize(("beta", "delta", "with_is"), [(0.0, None, False), (0.05, 1.5, True)])
def test_loss_and_gradients_match_trl(policy, tmp_path: Path, loss_type, beta, delta, with_is) -> None:
    model, tok = policy
    trainer = _trainer(model, tok, tmp_path, loss_type, beta, delta)
    batch = _batch()
    prompt_ids, prompt_mask = _trl_prompts()
    with torch.no_grad():
        current, _ = completion_logprobs(model, batch, TEMPERATURE)
        with model.disable_adapter():
            ref, _ = completion_logprobs(model, batch, TEMPERATURE)
    gen = torch.Generator().manual_seed(7)
    # alternate tokens far below / above the old policy so both clip regions are hit, plus noise
    shift = torch.tensor([0.5, -0.5]).repeat(current.size(1))[: current.size(1)]
    old = current + shift + 0.1 * torch.randn(current.shape, generator=gen)
    behaviour = old + 0.5 * torch.randn(current.shape, generator=gen)
    weights = importance_weights(old, behaviour, batch.completion_mask, "token_truncate", cap=1.2) if with_is else None

    inputs = {
        "prompt_ids": prompt_ids, "prompt_mask": prompt_mask,
        "completion_ids": batch.completion_ids, "completion_mask": batch.completion_mask.long(),
        "advantages": batch.advantages, "old_per_token_logps": old, "ref_per_token_logps": ref,
        "num_items_in_batch": batch.completion_mask.sum(),
    }
    if with_is:
        trainer.use_vllm, trainer.vllm_importance_sampling_correction = True, True
        inputs["importance_sampling_ratio"] = weights
    model.zero_grad(set_to_none=True)
    trl_loss = trainer._compute_loss(model, inputs)
    trl_loss.backward()
    trl_grads = _grads(model)
    trl_metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}

    model.zero_grad(set_to_none=True)
    logprobs, _ = completion_logprobs(model, batch, TEMPERATURE)
    loss, metrics = grpo_loss(logprobs, old, ref, batch.advantages, batch.completion_mask, loss_type,
                              epsilon_low=0.2, epsilon_high=0.28, beta=beta, max_completion_length=MAX_COMPLETION,
                              importance_weights=weights, delta=delta)
    loss.backward()
    ours = _grads(model)

    assert abs(loss.item() - trl_loss.item()) < 1e-5, (loss.item(), trl_loss.item())
    assert set(ours) == set(trl_grads) and ours
    for name, g in ours.items():
        torch.testing.assert_close(g, trl_grads[name], atol=1e-5, rtol=1e-4, msg=name)
    for key in ("clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean") + (("kl",) if beta else ()):
        assert abs(metrics[key] - trl_metrics[key]) < 1e-5, key
    assert metrics["clip_ratio/low_mean"] > 0 and metrics["clip_ratio/high_mean"] > 0  # both clips exercised
