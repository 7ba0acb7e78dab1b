"""Data-parallel learning: token-balanced shards that keep GRPO groups whole, gradient all-reduce, merged metrics.

    shards = shard_samples(samples, num_shards=2)              # list[list[TrainSample]], groups never split
    init_process_group("10.0.0.5", 29500, rank, world_size)    # gloo on CPU, nccl with CUDA
    core.set_gradient_sync(GradientSync())                     # GRPOTrainerCore sums counts and gradients
    metrics = merge_rank_metrics([rank0_metrics, rank1_metrics])

Exactness: every rank normalises its loss by the step's *global* totals (sequences for grpo and
dr_grpo, active tokens for dapo, micro-batches for bnpo), so the sum of the ranks' gradients is
the gradient of the single-learner loss on the whole batch; the all-reduce is a plain SUM and every
rank then clips and steps identically. bnpo averages micro-batch token means, so its value depends
on how the step is cut into micro-batches: with N ranks it averages over all ranks' micro-batches,
as TRL under DDP does. Imports torch.distributed only; no Ray.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from datetime import timedelta

import torch
import torch.distributed as dist

# how merge_rank_metrics combines a key across ranks; every other key is a token-weighted mean
_SUM = ("loss", "tokens", "num_sequences", "num_micro_batches")
_MIN = ("is_weight/min",)
_MAX = ("is_weight/max", "policy_version_lag_max", "learn_time_s", "memory/max_rss_gib",
        "memory/peak_allocated_gib", "memory/peak_reserved_gib")
_PER_SEQUENCE = ("frac_masked_truncated", "advantage_abs_mean", "policy_version_lag_mean")
_SAME_ON_EVERY_RANK = ("grad_norm", "nonfinite_grad", "lr", "version")


def sample_cost(sample, max_prompt_length: int | None = None) -> int:
    """Tokens a rank runs forward and backward for `sample`: its (truncated) prompt plus its completion."""
    prompt = len(sample.prompt_token_ids)
    if max_prompt_length is not None:
        prompt = min(prompt, max_prompt_length)
    return prompt + len(sample.completion_token_ids)


def shard_samples(samples: Sequence, num_shards: int, max_prompt_length: int | None = None) -> list[list]:
    """Split `samples` into `num_shards` lists, token-balanced, each GRPO group (`sample.group`) on one shard.

    A sample whose group is None is a group of its own. Greedy longest-first: groups sorted by cost
    (ties by first position) go to the shard with the fewest tokens so far (ties: fewer samples, lower
    index), so the largest shard is within 4/3 of the best split. Each shard keeps the input order.
    Shards may be empty when there are fewer groups than shards.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, got {num_shards}")
    groups: dict[object, list[int]] = {}
    for i, s in enumerate(samples):
        key = ("sample", i) if s.group is None else ("group", s.group)
        groups.setdefault(key, []).append(i)
    units = [(sum(sample_cost(samples[i], max_prompt_length) for i in idx), idx) for idx in groups.values()]
    units.sort(key=lambda u: (-u[0], u[1][0]))
    loads = [0] * num_shards
    members: list[list[int]] = [[] for _ in range(num_shards)]
    for cost, idx in units:
        k = min(range(num_shards), key=lambda j: (loads[j], len(members[j]), j))
        loads[k] += cost
        members[k].extend(idx)
    return [[samples[i] for i in sorted(m)] for m in members]


def merge_rank_metrics(per_rank: Sequence[dict[str, float]]) -> dict[str, float]:
    """One step's metrics from every rank's: sums, min/max, token- or sequence-weighted means (see _SUM etc.)."""
    if not per_rank:
        raise ValueError("merge_rank_metrics needs the metrics of at least one rank")
    tokens = [m.get("tokens", 0.0) for m in per_rank]
    seqs = [m.get("num_sequences", 0.0) for m in per_rank]
    out: dict[str, float] = {}
    for key in dict.fromkeys(k for m in per_rank for k in m):
        have = [(m[key], t, s) for m, t, s in zip(per_rank, tokens, seqs, strict=True) if key in m]
        values = [v for v, _, _ in have]
        if key in _SUM:
            out[key] = sum(values)
        elif key in _MIN:
            out[key] = min(values)
        elif key in _MAX:
            out[key] = max(values)
        elif key in _SAME_ON_EVERY_RANK:
            out[key] = per_rank[0].get(key, values[0])
        else:
            weights = [s if key in _PER_SEQUENCE else t for _, t, s in have]
            total = sum(weights)
            # a key only ranks without tokens report (all masked) falls back to the plain mean
            out[key] = (sum(v * w for v, w in zip(values, weights, strict=True)) / total if total > 0
                        else sum(values) / len(values))
    if "learn_time_s" in out and "tokens" in out:
        out["learn_tokens_per_s"] = out["tokens"] / out["learn_time_s"] if out["learn_time_s"] > 0 else 0.0
    return out


def free_port() -> int:
    """A TCP port that is free on this node now (the OS picks it; another process may take it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def default_backend() -> str:
    """nccl when this process sees a CUDA device, else gloo."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def init_process_group(address: str, port: int, rank: int, world_size: int, backend: str | None = None,
                       timeout_s: float = 1800.0) -> str:
    """Join the default torch.distributed group over tcp://address:port; returns the backend used."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside the world of {world_size} ranks")
    backend = backend or default_backend()
    if dist.is_initialized():
        raise RuntimeError("this process already belongs to a torch.distributed process group")
    dist.init_process_group(backend, init_method=f"tcp://{address}:{port}", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=timeout_s))
    return backend


class GradientSync:
    """SUM all-reduce of step counts and gradients over the default process group (the GRPOTrainerCore hook)."""

    def __init__(self) -> None:
        if not dist.is_initialized():
            raise RuntimeError("GradientSync needs an initialised torch.distributed process group")
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    def sum_counts(self, counts: Sequence[int], device: torch.device) -> list[int]:
        """Element-wise sum of integer counts over all ranks (every rank gets the same totals)."""
        t = torch.tensor([int(c) for c in counts], dtype=torch.int64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return [int(c) for c in t.tolist()]

    def all_reduce_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Replace every rank's gradients by their sum over ranks, in one flat buffer per dtype and device.

        A parameter no rank produced a gradient for keeps grad None (AdamW then skips it, as one learner
        would); one that only some ranks touched gets zeros from the others.
        """
        if not params:
            return
        present = torch.tensor([p.grad is not None for p in params], dtype=torch.int64, device=params[0].device)
        dist.all_reduce(present, op=dist.ReduceOp.SUM)
        active = [p for p, n in zip(params, present.tolist(), strict=True) if n > 0]
        buckets: dict[tuple[torch.dtype, torch.device], list[torch.nn.Parameter]] = {}
        for p in active:
            buckets.setdefault((p.dtype, p.device), []).append(p)
        for group in buckets.values():
            flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in group])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            offset = 0
            for p in group:
                n = p.numel()
                p.grad = flat[offset: offset + n].view_as(p).clone()
                offset += n

    def broadcast_parameters(self, params: Sequence[torch.nn.Parameter], src: int = 0) -> None:
        """Copy rank `src`'s parameter values to every rank (identical starting weights)."""
        with torch.no_grad():
            for p in params:
                dist.broadcast(p.data, src=src)


def destroy_process_group() -> None:
    """Leave the default process group if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()
