"""Group-relative advantages (r - mean_group) / (std + eps), with None rewards left out and counted.

Matches TRL GRPOTrainer ("sum_then_normalize"): the baseline is always the group mean; the
std is Bessel-corrected (unbiased, TRL's `nanstd`) over the group (scale="group") or over
the whole batch (scale="batch"); scale="none" only subtracts the mean (Dr. GRPO). A reward
of None (the validator failed, DESIGN.md "Reward semantics") is left out of its group's
mean and std, gets advantage 0 and `valid=False`, so the learner can drop it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Scale = Literal["group", "batch", "none"]


@dataclass(frozen=True)
class GroupAdvantages:
    """Advantages of one step's completions, in the order given (groups are consecutive)."""

    advantages: tuple[float, ...]
    valid: tuple[bool, ...]  # False where the reward was None: advantage 0, keep it out of the loss
    group_has_signal: tuple[bool, ...]  # per group: at least two valid rewards that differ
    frac_zero_std_groups: float  # share of groups without signal (all valid rewards equal, or < 2 valid)
    num_invalid: int  # completions whose reward was None
    reward_mean: float  # over valid rewards; nan when none
    reward_std: float  # unbiased, over valid rewards; nan when fewer than two


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _unbiased_std(values: Sequence[float]) -> float:
    # TRL's nanstd: Bessel-corrected, undefined (nan) for fewer than two values
    if len(values) < 2:
        return math.nan
    m = _mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def group_advantages(
    rewards: Sequence[float | None], group_size: int, scale: Scale = "group", eps: float = 1e-4
) -> GroupAdvantages:
    """Advantages for `rewards` laid out as consecutive groups of `group_size` completions of one prompt."""
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    if len(rewards) % group_size != 0:
        raise ValueError(f"{len(rewards)} rewards do not split into groups of {group_size}")
    if scale not in ("group", "batch", "none"):
        raise ValueError(f"scale must be 'group', 'batch' or 'none', got {scale!r}")
    for i, r in enumerate(rewards):
        if r is not None and not math.isfinite(r):
            raise ValueError(f"reward {i} is {r}; use None for a completion the validator could not score")

    all_valid = [float(r) for r in rewards if r is not None]
    batch_std = _unbiased_std(all_valid)
    advantages: list[float] = []
    has_signal: list[bool] = []
    for start in range(0, len(rewards), group_size):
        group = rewards[start : start + group_size]
        valid = [float(r) for r in group if r is not None]
        mean = _mean(valid)
        group_std = _unbiased_std(valid)
        # TRL logs "zero std" with isclose(std, 0); a group with < 2 valid rewards has no signal either
        has_signal.append(not math.isnan(group_std) and not math.isclose(group_std, 0.0, abs_tol=1e-8))
        std = group_std if scale == "group" else batch_std
        for r in group:
            if r is None:
                advantages.append(0.0)
                continue
            a = r - mean
            if scale != "none":
                a = a / (std + eps)
            # TRL: a nan std (fewer than two valid rewards) gives nan, which becomes 0
            advantages.append(0.0 if math.isnan(a) else a)

    num_groups = len(has_signal)
    return GroupAdvantages(
        advantages=tuple(advantages),
        valid=tuple(r is not None for r in rewards),
        group_has_signal=tuple(has_signal),
        frac_zero_std_groups=(num_groups - sum(has_signal)) / num_groups if num_groups else 0.0,
        num_invalid=sum(r is None for r in rewards),
        reward_mean=_mean(all_valid),
        reward_std=batch_std,
    )
