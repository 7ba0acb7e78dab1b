"""One GRPO optimizer step: lay out (prompt, completion) token ids, logprobs, reference logprobs, loss, update.

    core = GRPOTrainerCore(model, tokenizer, config, num_training_steps=1000)
    metrics = core.step([TrainSample(prompt_ids, completion_ids, advantage, behaviour_logprobs), ...])

A step is one optimizer update over all its samples, split into micro-batches whose gradients
add up to the full-batch gradient (loss types grpo, dr_grpo, dapo; bnpo averages micro-batch
means, as TRL does). The old policy is the current one (one update per batch, TRL's
num_iterations=1); the behaviour logprobs of the rollout enter through importance weights.

Data parallel (`set_gradient_sync`, learner/grpo/data_parallel.py): each rank holds a shard of the step;
the step's sequence, token and micro-batch totals are summed over ranks before the loss, and the
gradients after it, so every rank applies the single-learner update of the whole batch.
"""

from __future__ import annotations

import math
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import get_scheduler

from learner.config.learner import LearnerConfig
from learner.grpo.loss import grpo_loss, importance_weights
from learner.grpo.token_logprobs import gather_token_logprobs
from learner.policy.model import trainable_parameters


class NonFiniteTrainingError(RuntimeError):
    """A loss, gradient or adapter weight became NaN or inf: the run stops (`reason` says which and where)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TrainSample:
    """One completion to learn from: the learner's view of a scored Completion."""

    prompt_token_ids: tuple[int, ...]
    completion_token_ids: tuple[int, ...]
    advantage: float
    behaviour_logprobs: tuple[float, ...] = ()  # empty: unknown, importance weight 1
    finish_reason: str = "stop"  # "stop" | "length"
    policy_version: int = 0
    group: int | None = None  # GRPO group (prompt) index in the step; data-parallel shards keep a group whole


def samples_from_completions(
    completions: Sequence, advantages: Sequence[float], valid: Sequence[bool] | None = None,
    group_size: int | None = None,
) -> list[TrainSample]:
    """TrainSamples from Completion objects (reward_service.result) and their advantages; `valid` False drops one.

    With `group_size` G, completion i belongs to group i // G (the driver's layout: G per prompt).
    """
    if len(completions) != len(advantages):
        raise ValueError(f"{len(completions)} completions but {len(advantages)} advantages")
    if group_size is not None and group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    keep = valid if valid is not None else [True] * len(completions)
    return [
        TrainSample(
            prompt_token_ids=tuple(c.prompt_token_ids),
            completion_token_ids=tuple(c.token_ids),
            advantage=float(a),
            behaviour_logprobs=tuple(c.logprobs),
            finish_reason=c.finish_reason,
            policy_version=c.policy_version,
            group=None if group_size is None else i // group_size,
        )
        for i, (c, a, k) in enumerate(zip(completions, advantages, keep, strict=True))
        if k
    ]



@dataclass(frozen=True)
class PaddedBatch:
    """Each row is its prompt then its completion, right-padded: a causal forward never sees a pad token.

    Pads only follow a row's last real token, so a forward without an attention mask (what Unsloth's
    training forward does: it drops the mask) gives every real token the same logits as a masked one.
    The completion of row i starts at column `completion_start[i]` (its prompt length).
    """

    input_ids: torch.Tensor  # (B, L): prompt_i + completion_i + pads, L = max(len(prompt_i) + len(completion_i))
    attention_mask: torch.Tensor  # (B, L): 1 on real tokens
    position_ids: torch.Tensor  # (B, L): 0, 1, 2, ... in every row (pads continue it), as generate() numbers them
    completion_start: torch.Tensor  # (B,) long: column of row i's first completion token
    completion_ids: torch.Tensor  # (B, T): completion tokens left-aligned, pad_id after
    completion_mask: torch.Tensor  # (B, T) float: 1 for tokens in the loss
    advantages: torch.Tensor  # (B,)
    behaviour_logprobs: torch.Tensor  # (B, T), nan where unknown

    def completion_lengths(self) -> list[int]:
        """Real completion tokens of each row (masked or not)."""
        return [int(n) for n in (self.attention_mask.sum(-1) - self.completion_start).tolist()]


def collate(
    samples: Sequence[TrainSample],
    pad_id: int,
    max_prompt_length: int | None = None,
    mask_truncated: bool = False,
    device: torch.device | str = "cpu",
) -> PaddedBatch:
    """Lay `samples` out as right-padded rows (PaddedBatch); prompts are cut from the left to `max_prompt_length`."""
    prompts = [list(s.prompt_token_ids)[-max_prompt_length:] if max_prompt_length else list(s.prompt_token_ids)
               for s in samples]
    if any(not p for p in prompts):
        raise ValueError("every sample needs at least one prompt token")
    width = max(len(p) + len(s.completion_token_ids) for p, s in zip(prompts, samples, strict=True))
    width_c = max(1, max(len(s.completion_token_ids) for s in samples))
    b = len(samples)
    input_ids = torch.full((b, width), pad_id, dtype=torch.long)
    attention = torch.zeros((b, width), dtype=torch.long)
    completion_ids = torch.full((b, width_c), pad_id, dtype=torch.long)
    comp_mask = torch.zeros((b, width_c))
    behaviour = torch.full((b, width_c), math.nan)
    for i, (s, p) in enumerate(zip(samples, prompts, strict=True)):
        c = list(s.completion_token_ids)
        if s.behaviour_logprobs and len(s.behaviour_logprobs) != len(c):
            raise ValueError(
                f"sample {i}: {len(s.behaviour_logprobs)} behaviour logprobs for {len(c)} completion tokens"
            )
        input_ids[i, : len(p) + len(c)] = torch.tensor(p + c)
        attention[i, : len(p) + len(c)] = 1
        if c:
            completion_ids[i, : len(c)] = torch.tensor(c)
            if not (mask_truncated and s.finish_reason == "length"):
                comp_mask[i, : len(c)] = 1.0
        if s.behaviour_logprobs:
            behaviour[i, : len(c)] = torch.tensor(s.behaviour_logprobs)
    position_ids = torch.arange(width, dtype=torch.long).expand(b, width).contiguous()
    return PaddedBatch(
        input_ids=input_ids.to(device),
        attention_mask=attention.to(device),
        position_ids=position_ids.to(device),
        completion_start=torch.tensor([len(p) for p in prompts], dtype=torch.long, device=device),
        completion_ids=completion_ids.to(device),
        completion_mask=comp_mask.to(device),
        advantages=torch.tensor([s.advantage for s in samples], dtype=torch.float32, device=device),
        behaviour_logprobs=behaviour.to(device),
    )


def completion_logprobs(
    model: torch.nn.Module, batch: PaddedBatch, temperature: float = 1.0, compute_entropy: bool = False,
    use_attention_mask: bool = True, chunk_tokens: int | None = 512,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token logprobs (B, T) of the completion tokens at `temperature`, and their entropies when asked.

    `use_attention_mask=False` runs the forward as Unsloth's training forward does (no mask, causal
    only); with right-padded rows both give the same values. Positions past a row's completion are 0.
    The log-softmax runs `chunk_tokens` positions at a time (learner/grpo/token_logprobs.py).
    """
    width = batch.input_ids.size(1)
    starts = batch.completion_start.tolist()
    lengths = batch.completion_lengths()
    first = min(starts)
    keep = width - first + 1  # from the position that predicts the earliest first completion token
    out = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask if use_attention_mask else None,
        position_ids=batch.position_ids,
        logits_to_keep=keep,
        use_cache=False,
    )
    # column k of the kept logits predicts input column first + k; row i's completion token j is at
    # column start_i - first + j
    device = batch.input_ids.device
    rows = torch.cat([torch.full((n,), i, dtype=torch.long) for i, n in enumerate(lengths)]).to(device)
    js = torch.cat([torch.arange(n) for n in lengths]).to(device)
    cols = js + (batch.completion_start - first)[rows]
    lp, ent = gather_token_logprobs(out.logits, rows, cols, batch.completion_ids[rows, js], temperature,
                                    chunk_tokens, compute_entropy)
    shape = batch.completion_ids.shape
    logprobs = torch.zeros(shape, device=device).index_put((rows, js), lp)
    entropy = None if ent is None else torch.zeros(shape, device=device).index_put((rows, js), ent)
    return logprobs, entropy


def step_memory(device: torch.device) -> dict[str, float]:
    """Peak memory of the step just taken: CUDA allocated and reserved since the step began (GiB), and the
    process's peak resident set size (GiB, since it started: on CPU the only peak there is)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    out = {"memory/max_rss_gib": rss / (2**30 if sys.platform == "darwin" else 2**20)}
    if device.type == "cuda":
        out["memory/peak_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        out["memory/peak_reserved_gib"] = torch.cuda.max_memory_reserved(device) / 2**30
    return out


class GRPOTrainerCore:
    """Owns the optimizer and scheduler of a LoRA policy and takes GRPO steps (module docstring)."""

    def __init__(
        self, model: torch.nn.Module, tokenizer, config: LearnerConfig, num_training_steps: int | None = None
    ) -> None:
        if config.loss_type == "dr_grpo" and config.max_completion_length is None:
            raise ValueError("loss_type 'dr_grpo' needs learner.max_completion_length (the rollout's max_new_tokens)")
        if config.lr_scheduler != "constant" and num_training_steps is None:
            raise ValueError(f"lr_scheduler '{config.lr_scheduler}' needs num_training_steps")
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        params = trainable_parameters(model)
        if not params:
            raise ValueError("the model has no trainable parameters (expected LoRA weights)")
        self.params = params
        self.optimizer = torch.optim.AdamW(
            params,
            lr=config.learning_rate,
            betas=(config.adam_beta1, config.adam_beta2),
            eps=config.adam_epsilon,
            weight_decay=config.weight_decay,
        )
        name = "constant_with_warmup" if config.lr_scheduler == "constant" else config.lr_scheduler
        self.scheduler = get_scheduler(
            name, self.optimizer, num_warmup_steps=config.warmup_steps, num_training_steps=num_training_steps
        )
        self.version = 0  # optimizer steps taken; the adapter version pushed to rollout actors
        self.sync = None  # GradientSync of a data-parallel group; None: this core is the only learner

    def set_gradient_sync(self, sync) -> None:
        """Join a data-parallel group (learner.grpo.data_parallel.GradientSync): totals and gradients are summed."""
        self.sync = sync

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _skips_zero_advantage(self) -> bool:
        cfg = self.config
        return cfg.skip_zero_advantage and cfg.beta == 0.0 and cfg.loss_type != "bnpo"

    def _micro_batches(self, n: int) -> list[range]:
        if n == 0:
            return []  # a data-parallel rank whose shard is empty still joins the all-reduces
        size = self.config.micro_batch_size or math.ceil(n / self.config.gradient_accumulation_steps)
        return [range(i, min(i + size, n)) for i in range(0, n, size)]

    def accumulate_gradients(self, samples: Sequence[TrainSample]) -> dict[str, float]:
        """Zero the gradients and backpropagate the loss of `samples` micro-batch by micro-batch (no update).

        Returns loss, token-mean metrics (kl, clip ratios, entropy, importance weights) and counts, all of
        this rank's samples; with a gradient sync the gradients left in the parameters are the whole step's.
        """
        if not samples and self.sync is None:
            raise ValueError("a train step needs at least one sample")
        cfg = self.config
        self.model.train()
        masked = [cfg.mask_truncated_completions and s.finish_reason == "length" for s in samples]
        num_tokens = sum(len(s.completion_token_ids) for s, m in zip(samples, masked, strict=True) if not m)
        chunks = self._micro_batches(len(samples))
        # the loss is normalised by the step's totals: over all ranks when data parallel
        step_sequences, step_tokens, step_chunks = len(samples), num_tokens, len(chunks)
        if self.sync is not None:
            step_sequences, step_tokens, step_chunks = self.sync.sum_counts(
                [step_sequences, step_tokens, step_chunks], self.device)
            if step_sequences == 0:
                raise ValueError("a train step needs at least one sample (every data-parallel shard is empty)")
        self.optimizer.zero_grad(set_to_none=True)
        if self._skips_zero_advantage():
            # exactly zero loss and gradient without KL: compute only the rest, normalise by the whole step
            compute = [i for i, s in enumerate(samples) if s.advantage != 0.0]
            if compute:  # nothing to learn from: compute all anyway, so the step still logs entropy and clips
                chunks = [[compute[j] for j in r] for r in self._micro_batches(len(compute))]
        total_loss, sums, computed_tokens = 0.0, {}, 0
        for chunk in chunks:
            mb = collate([samples[i] for i in chunk], self.pad_id, cfg.max_prompt_length,
                         cfg.mask_truncated_completions, self.device)
            ref = None
            if cfg.beta != 0.0:
                with torch.no_grad(), self.model.disable_adapter():
                    ref, _ = completion_logprobs(self.model, mb, cfg.temperature,
                                                 chunk_tokens=cfg.logprob_chunk_tokens)
            logprobs, entropy = completion_logprobs(self.model, mb, cfg.temperature, cfg.compute_entropy,
                                                    chunk_tokens=cfg.logprob_chunk_tokens)
            weights = None
            if cfg.importance_sampling != "off" and not torch.isnan(mb.behaviour_logprobs).all():
                weights = importance_weights(logprobs.detach(), mb.behaviour_logprobs, mb.completion_mask,
                                             cfg.importance_sampling, cfg.importance_sampling_cap,
                                             cfg.importance_sampling_min)
            loss, m = grpo_loss(
                logprobs, None, ref, mb.advantages, mb.completion_mask, cfg.loss_type, cfg.epsilon_low,
                cfg.epsilon_high, cfg.beta, cfg.max_completion_length, weights, cfg.delta, cfg.kl_bias_correction,
                num_sequences=step_sequences, num_tokens=step_tokens,
            )
            if cfg.loss_type == "bnpo":
                loss = loss / step_chunks  # TRL: micro-batch token means, averaged over accumulation (and ranks)
            loss.backward()
            total_loss += float(loss.detach())
            if entropy is not None:
                m["entropy"] = float((entropy * mb.completion_mask).sum() / mb.completion_mask.sum().clamp(min=1.0))
            tokens = m.pop("tokens")
            computed_tokens += tokens
            for k, v in m.items():
                if k == "is_weight/min":
                    sums[k] = min(sums.get(k, v), v)
                elif k == "is_weight/max":
                    sums[k] = max(sums.get(k, v), v)
                else:
                    sums[k] = sums.get(k, 0.0) + v * tokens
        for p in self.params:  # nothing computed: zero gradients, so AdamW's moments move as they would
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if self.sync is not None:
            self.sync.all_reduce_gradients(self.params)
        denom = max(computed_tokens, 1)
        metrics = {k: (v if k in ("is_weight/min", "is_weight/max") else v / denom) for k, v in sums.items()}
        metrics.update(loss=total_loss, tokens=float(num_tokens), num_sequences=float(len(samples)),
                       num_micro_batches=float(len(chunks)),
                       frac_masked_truncated=sum(masked) / len(samples) if samples else 0.0)
        return metrics

    def step(self, samples: Sequence[TrainSample]) -> dict[str, float]:
        """One optimizer step over `samples`; returns loss, kl, clip ratios, entropy, grad_norm, lr, tokens."""
        t0 = time.perf_counter()
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        lr = self.optimizer.param_groups[0]["lr"]
        metrics = self.accumulate_gradients(samples)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm))
        # A NaN/inf here never heals (Adam's moments would carry it): stop, before the update poisons the adapter
        if not math.isfinite(metrics["loss"]):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteTrainingError(f"optimizer step {self.version}: the loss is {metrics['loss']} (not finite); "
                                         "no update was applied")
        if not math.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteTrainingError(f"optimizer step {self.version}: the gradient norm is {grad_norm} (loss "
                                         f"{metrics['loss']:.6g}); no update was applied")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        # one fused check over the trainable tensors (a device sync per step, not per tensor); names only on failure
        if not bool(torch.stack([p.isfinite().all() for p in self.params]).all()):
            broken = [name for name, p in self.model.named_parameters() if p.requires_grad and not p.isfinite().all()]
            raise NonFiniteTrainingError(
                f"optimizer step {self.version}: {len(broken)} adapter weight tensor(s) are not finite after the "
                f"update (first: {broken[0]}; learning rate {lr:g}, gradient norm {grad_norm:.6g})")
        self.scheduler.step()
        metrics.update(step_memory(self.device))
        if cuda:  # a colocated engine wakes up next and re-maps its share of this GPU
            torch.cuda.empty_cache()
        lags = [self.version - s.policy_version for s in samples] or [0]
        self.version += 1
        elapsed = time.perf_counter() - t0
        metrics.update(
            grad_norm=grad_norm,
            nonfinite_grad=0.0,  # kept for dashboards: a non-finite gradient now stops the run (raised above)
            lr=lr,
            advantage_abs_mean=sum(abs(s.advantage) for s in samples) / len(samples) if samples else 0.0,
            policy_version_lag_mean=sum(lags) / len(lags),
            policy_version_lag_max=float(max(lags)),
            learn_time_s=elapsed,
            learn_tokens_per_s=metrics["tokens"] / elapsed if elapsed > 0 else 0.0,
            version=float(self.version),
        )
        return metrics

    def state_dict(self) -> dict:
        """Optimizer, scheduler and version, for checkpoints."""
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "version": self.version}
