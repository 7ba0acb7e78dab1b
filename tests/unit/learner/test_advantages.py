"""Group advantages: TRL's formula (group mean, unbiased std, eps), None rewards, zero-std groups."""

from __future__ import annotations

import math
import random

import pytest
import torch

from learner.grpo.advantages import group_advantages


def test_two_completion_group_by_hand() -> None:
    res = group_advantages([1.0, 0.0], group_size=2)
    std = math.sqrt(0.5)  # unbiased: ((0.5^2 + 0.5^2) / 1) ** 0.5
    assert res.advantages[0] == pytest.approx(0.5 / (std + 1e-4))
    assert res.advantages[1] == pytest.approx(-0.5 / (std + 1e-4))
    assert res.frac_zero_std_groups == 0.0 and res.group_has_signal == (True,)


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_matches_trl_nanstd_formula(scale: str) -> None:
    nanstd = pytest.importorskip("trl.trainer.utils").nanstd
    rng = random.Random(0)
    g = 4
    rewards = [rng.choice([-1.0, -0.6, 0.1, 1.0]) for _ in range(6 * g)]
    rewards[5] = None
    t = torch.tensor([math.nan if r is None else r for r in rewards], dtype=torch.float64)
    mean = torch.nanmean(t.view(-1, g), dim=1).repeat_interleave(g)
    std = nanstd(t.view(-1, g), dim=1).repeat_interleave(g) if scale != "batch" else nanstd(t).expand_as(t)
    expected = t - mean
    if scale != "none":
        expected = expected / (std + 1e-4)
    expected = torch.nan_to_num(expected, nan=0.0)
    got = group_advantages(rewards, g, scale=scale).advantages
    assert torch.allclose(torch.tensor(got, dtype=torch.float64), expected, atol=1e-9)


def test_none_reward_left_out_of_mean_and_std_and_counted() -> None:
    res = group_advantages([1.0, None, 0.0, 0.0], group_size=4)
    valid = [1.0, 0.0, 0.0]
    mean = sum(valid) / 3
    std = math.sqrt(sum((v - mean) ** 2 for v in valid) / 2)
    assert res.advantages[1] == 0.0 and res.valid == (True, False, True, True)
    assert res.advantages[0] == pytest.approx((1.0 - mean) / (std + 1e-4))
    assert res.num_invalid == 1
    assert res.reward_mean == pytest.approx(mean)


def test_equal_rewards_and_single_valid_groups_have_no_signal() -> None:
    res = group_advantages([0.5, 0.5, 1.0, None, None, None, 1.0, -1.0], group_size=2)
    assert res.advantages[:4] == (0.0, 0.0, 0.0, 0.0)
    assert res.group_has_signal == (False, False, False, True)
    assert res.frac_zero_std_groups == pytest.approx(0.75)
    assert res.num_invalid == 3


def test_batch_scale_uses_group_mean_and_batch_std() -> None:
    rewards = [1.0, 0.0, 1.0, 1.0]
    res = group_advantages(rewards, 2, scale="batch")
    batch_std = torch.tensor(rewards).std().item()  # unbiased
    assert res.advantages[0] == pytest.approx(0.5 / (batch_std + 1e-4))
    assert res.advantages[2] == 0.0  # equal rewards in the group: zero advantage whatever the scale


def test_none_scale_only_centres() -> None:
    assert group_advantages([1.0, -1.0, 0.2, 0.0], 2, scale="none").advantages == pytest.approx((1, -1, 0.1, -0.1))


@pytest.mark.parametrize(
    ("rewards", "g", "match"),
    [([1.0, 0.0, 1.0], 2, "do not split into groups of 2"), ([1.0, math.nan], 2, "use None"), ([1.0], 0, "at least 1")],
)
def test_bad_input_is_rejected(rewards, g, match) -> None:
    with pytest.raises(ValueError, match=match):
        group_advantages(rewards, g)
