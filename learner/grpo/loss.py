"""The GRPO loss (`grpo_loss`) and the behaviour-policy importance weights of async mode.

Per completion token t of sequence i (all tensors are (B, T), masked by `completion_mask`):

    r      = exp(logp - old_logp)                       policy ratio (1 on-policy, with gradient)
    policy = -min(r * A_i, clip(r, 1 - eps_low, 1 + eps_high) * A_i)   (r capped at `delta` first, if set)
    policy = policy * w                                 w: importance weight of async mode (see below)
    kl     = exp(ref - logp) - (ref - logp) - 1         k3 estimator, >= 0; times r if kl_bias_correction
    l      = policy + beta * kl

and the loss aggregates l by `loss_type`:

    grpo    mean over sequences of the per-sequence token mean
    bnpo    token mean over the (micro-)batch given
    dr_grpo sum / (num_sequences * max_completion_length)
    dapo    sum / num_tokens (all active tokens of the optimizer step)

This is TRL GRPOTrainer._compute_loss (tests/unit/learner/test_loss_matches_trl.py checks it).
For micro-batching, pass the step's totals as `num_sequences` / `num_tokens` so the micro-batch
losses sum to the full-batch loss (grpo, dr_grpo, dapo); bnpo is local by definition.

Importance weights (`importance_weights`): the completions were sampled by a behaviour policy
(the rollout actor's version, maybe stale, maybe another engine) with logprobs `b`; the learner's
old policy gives `old`. Token mode: w_t = exp(old_t - b_t); sequence mode: w_i = exp(sum_t (old_t
- b_t)). Truncate modes clamp w to [min, cap]; mask modes set w = 0 outside [min, cap]. Same as
TRL's vllm_importance_sampling_* (w is a constant: no gradient).
"""

from __future__ import annotations

import torch

LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo")
IS_MODES = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    return float((x * mask).sum() / mask.sum().clamp(min=1.0))


def importance_weights(
    old_logprobs: torch.Tensor,
    behaviour_logprobs: torch.Tensor,
    completion_mask: torch.Tensor,
    mode: str = "token_truncate",
    cap: float | None = 3.0,
    min_weight: float | None = None,
) -> torch.Tensor:
    """Behaviour-policy correction w (B, T) for token modes or (B, 1) for sequence modes (docstring above)."""
    if mode not in IS_MODES:
        raise ValueError(f"importance sampling mode must be one of {IS_MODES}, got {mode!r}")
    diff = (old_logprobs - behaviour_logprobs).detach() * completion_mask
    diff = torch.nan_to_num(diff, nan=0.0)  # a token without a behaviour logprob gets weight 1
    if mode.startswith("sequence"):
        diff = diff.sum(dim=-1, keepdim=True)
    weights = torch.exp(diff)
    if mode.endswith("truncate"):
        return torch.clamp(weights, min=min_weight, max=cap)
    low = -torch.inf if min_weight is None else min_weight
    high = torch.inf if cap is None else cap
    return weights.masked_fill((weights < low) | (weights > high), 0.0)


def grpo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor | None,
    ref_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    loss_type: str = "dapo",
    epsilon_low: float = 0.2,
    epsilon_high: float = 0.2,
    beta: float = 0.0,
    max_completion_length: int | None = None,
    importance_weights: torch.Tensor | None = None,
    delta: float | None = None,
    kl_bias_correction: bool = True,
    num_sequences: int | None = None,
    num_tokens: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """GRPO loss of one (micro-)batch and its metrics (kl, clip ratios, policy loss); see the module docstring.

    `old_logprobs` None means on-policy (old = logprobs, detached); `ref_logprobs` is needed when beta > 0.
    Metrics are token means over this (micro-)batch, plus `tokens` for weighting them across micro-batches.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    if logprobs.shape != completion_mask.shape:
        raise ValueError(f"logprobs {tuple(logprobs.shape)} and completion_mask {tuple(completion_mask.shape)} differ")
    if beta != 0.0 and ref_logprobs is None:
        raise ValueError("beta > 0 needs ref_logprobs (the adapter-disabled policy's logprobs)")
    if loss_type == "dr_grpo" and max_completion_length is None:
        raise ValueError("loss_type 'dr_grpo' needs max_completion_length")
    mask = completion_mask.to(logprobs.dtype)
    adv = advantages.to(logprobs.dtype)
    if adv.dim() == 1:
        adv = adv.unsqueeze(1)
    old = logprobs.detach() if old_logprobs is None else old_logprobs

    ratio = torch.exp(logprobs - old)
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    unclipped = ratio if delta is None else torch.clamp(ratio, max=delta)
    per_token = -torch.min(unclipped * adv, clipped * adv)
    if importance_weights is not None:
        per_token = per_token * importance_weights
    if beta != 0.0:
        d = ref_logprobs - logprobs
        kl = torch.exp(d) - d - 1
        if kl_bias_correction:
            kl = kl * ratio
        per_token = per_token + beta * kl

    batch = logprobs.size(0)
    if loss_type == "grpo":
        seq_means = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
        loss = seq_means.sum() / (num_sequences or batch)
    elif loss_type == "bnpo":
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = (per_token * mask).sum() / ((num_sequences or batch) * max_completion_length)
    else:  # dapo
        denom = mask.sum() if num_tokens is None else torch.as_tensor(float(num_tokens))
        loss = (per_token * mask).sum() / denom.clamp(min=1.0)

    with torch.no_grad():
        low = ((ratio < 1 - epsilon_low) & (adv < 0)).to(mask.dtype)
        high = ((ratio > 1 + epsilon_high) & (adv > 0)).to(mask.dtype)
        metrics = {
            "clip_ratio/low_mean": _masked_mean(low, mask),
            "clip_ratio/high_mean": _masked_mean(high, mask),
            "clip_ratio/region_mean": _masked_mean(torch.clamp(low + high, max=1.0), mask),
            "tokens": float(mask.sum()),
        }
        if beta != 0.0:
            metrics["kl"] = _masked_mean(kl, mask)
        if importance_weights is not None:
            w = importance_weights.expand_as(mask)
            metrics["is_weight/mean"] = _masked_mean(w, mask)
            active = w[mask.bool()]
            metrics["is_weight/min"] = float(active.min()) if active.numel() else 1.0
            metrics["is_weight/max"] = float(active.max()) if active.numel() else 1.0
    return loss, metrics
