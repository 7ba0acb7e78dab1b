"""grpo_loss: aggregation per loss type, k3 KL, clipping, importance weights, micro-batch totals."""

from __future__ import annotations

import math

import pytest
import torch

from learner.grpo.loss import grpo_loss, importance_weights

MASK = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])  # 3 tokens and 1 token
ADV = torch.tensor([1.0, -2.0])


def _logprobs(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (-torch.rand(MASK.shape, generator=g) * 3).requires_grad_(True)


@pytest.mark.parametrize(
    ("loss_type", "expected"),
    [
        ("grpo", -(1.0 + -2.0) / 2),  # per-sequence means, averaged: ratio is 1 on-policy
        ("bnpo", -(3 * 1.0 + 1 * -2.0) / 4),  # token mean over the batch
        ("dapo", -(3 * 1.0 + 1 * -2.0) / 4),  # token mean over the step (the same batch here)
        ("dr_grpo", -(3 * 1.0 + 1 * -2.0) / (2 * 8)),  # sum / (sequences * max_completion_length)
    ],
)
def test_on_policy_loss_value_per_type(loss_type: str, expected: float) -> None:
    loss, metrics = grpo_loss(_logprobs(), None, None, ADV, MASK, loss_type, max_completion_length=8)
    assert loss.item() == pytest.approx(expected)
    assert metrics["tokens"] == 4.0 and metrics["clip_ratio/region_mean"] == 0.0


def test_gradient_raises_logprob_of_positive_advantage() -> None:
    lp = _logprobs()
    loss, _ = grpo_loss(lp, None, None, ADV, MASK, "grpo")
    loss.backward()
    # gradient descent moves logprobs against the gradient: up for A > 0, down for A < 0, masked tokens untouched
    assert (lp.grad[0, :3] < 0).all() and (lp.grad[1, 0] > 0) and lp.grad[0, 3] == 0 and (lp.grad[1, 1:] == 0).all()
    assert lp.grad[0, 0].item() == pytest.approx(-1.0 / 3 / 2)


def test_k3_kl_value_and_zero_at_reference() -> None:
    lp = _logprobs()
    loss0, m0 = grpo_loss(lp, None, lp.detach().clone(), torch.zeros(2), MASK, "bnpo", beta=0.5)
    assert m0["kl"] == pytest.approx(0.0, abs=1e-7) and loss0.item() == pytest.approx(0.0, abs=1e-7)
    ref = lp.detach() - 0.3
    loss, m = grpo_loss(lp, None, ref, torch.zeros(2), MASK, "bnpo", beta=0.5)
    k3 = math.exp(-0.3) + 0.3 - 1
    assert m["kl"] == pytest.approx(k3, rel=1e-5)
    assert loss.item() == pytest.approx(0.5 * k3, rel=1e-5)


def test_clipping_zeroes_gradient_outside_trust_region() -> None:
    lp = torch.zeros(2, 1, requires_grad=True)
    old = torch.tensor([[-0.5], [0.5]])  # ratios e^0.5 = 1.65 (A > 0) and e^-0.5 = 0.61 (A < 0)
    mask = torch.ones(2, 1)
    loss, m = grpo_loss(lp, old, None, torch.tensor([1.0, -1.0]), mask, "bnpo", epsilon_low=0.2, epsilon_high=0.28)
    loss.backward()
    assert lp.grad.abs().sum() == 0
    assert m["clip_ratio/high_mean"] == 0.5 and m["clip_ratio/low_mean"] == 0.5 and m["clip_ratio/region_mean"] == 1.0
    lp.grad = None
    # inside the region the gradient flows: A > 0 with ratio 1.1 < 1.28
    loss, m = grpo_loss(lp, torch.tensor([[-0.0953], [0.0]]), None, torch.tensor([1.0, -1.0]), mask, "bnpo",
                        epsilon_high=0.28)
    loss.backward()
    assert lp.grad[0, 0] < 0 and m["clip_ratio/region_mean"] == 0.0


def test_micro_batch_losses_sum_to_full_batch_loss() -> None:
    lp = _logprobs(3)
    for loss_type in ("grpo", "dr_grpo", "dapo"):
        full, _ = grpo_loss(lp, None, None, ADV, MASK, loss_type, max_completion_length=8)
        parts = [
            grpo_loss(lp[i : i + 1], None, None, ADV[i : i + 1], MASK[i : i + 1], loss_type,
                      max_completion_length=8, num_sequences=2, num_tokens=4.0)[0]
            for i in range(2)
        ]
        assert (parts[0] + parts[1]).item() == pytest.approx(full.item(), abs=1e-7), loss_type


def test_importance_weights_token_and_sequence_modes() -> None:
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    old = torch.tensor([[-1.0, -1.0, -1.0]])
    behaviour = torch.tensor([[-2.0, -0.5, float("nan")]])  # exp(1) = 2.72, exp(-0.5) = 0.61
    w = importance_weights(old, behaviour, mask, "token_truncate", cap=2.0)
    assert w[0, :2].tolist() == pytest.approx([2.0, math.exp(-0.5)]) and w[0, 2] == 1.0
    w = importance_weights(old, behaviour, mask, "token_mask", cap=2.0)
    assert w[0, :2].tolist() == pytest.approx([0.0, math.exp(-0.5)])
    w = importance_weights(old, behaviour, mask, "sequence_truncate", cap=3.0)
    assert w.shape == (1, 1) and w.item() == pytest.approx(math.exp(0.5))
    w = importance_weights(old, behaviour, mask, "sequence_mask", cap=1.5)
    assert w.item() == 0.0
    w = importance_weights(old, behaviour, mask, "token_truncate", cap=3.0, min_weight=0.8)
    assert w[0, 1].item() == pytest.approx(0.8)


def test_importance_weights_scale_the_policy_term_only() -> None:
    lp = _logprobs()
    w = torch.full(MASK.shape, 0.5)
    plain, _ = grpo_loss(lp, None, None, ADV, MASK, "dapo")
    weighted, m = grpo_loss(lp, None, None, ADV, MASK, "dapo", importance_weights=w)
    assert weighted.item() == pytest.approx(0.5 * plain.item())
    assert m["is_weight/mean"] == pytest.approx(0.5) and m["is_weight/max"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loss_type": "ppo"}, "loss_type must be one of"),
        ({"loss_type": "dapo", "beta": 0.1}, "beta > 0 needs ref_logprobs"),
        ({"loss_type": "dr_grpo"}, "needs max_completion_length"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        grpo_loss(_logprobs(), None, None, ADV, MASK, **kwargs)


def test_unknown_importance_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="importance sampling mode"):
        importance_weights(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1), "token_clip")
