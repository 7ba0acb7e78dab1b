"""Token logprobs and entropies from full-vocabulary logits, a chunk of positions at a time.

    logprobs, entropy = gather_token_logprobs(logits, rows, cols, token_ids, temperature=0.7,
                                              chunk_tokens=512, compute_entropy=True)

`logits` is a model's (B, K, V) output; position m is `logits[rows[m], cols[m]]` and its token
`token_ids[m]`. The fp32 copy that a log-softmax needs (with vocabularies of 150k tokens the
largest tensor of a step) exists for one chunk at a time, in the forward and in the backward,
which recomputes each chunk's softmax from the kept logits and writes its gradient into one
zeros-like-logits tensor. So the peak is the logits, their gradient and one fp32 chunk, where
autograd over the unchunked math keeps several fp32 copies of all of them. Entropies come with
no gradient. Results equal the unchunked computation (tests/unit/learner/test_token_logprobs.py).
"""

from __future__ import annotations

import torch


class _ChunkedTokenLogprobs(torch.autograd.Function):
    """lp_m = x_m[id_m] / T - logsumexp(x_m / T); d lp_m / d x_m = (onehot(id_m) - softmax(x_m / T)) / T."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, token_ids: torch.Tensor,
                temperature: float, chunk: int, compute_entropy: bool) -> tuple[torch.Tensor, torch.Tensor]:
        m = token_ids.numel()
        logprobs = torch.empty(m, dtype=torch.float32, device=logits.device)
        log_z = torch.empty(m, dtype=torch.float32, device=logits.device)
        entropy = torch.zeros(m if compute_entropy else 0, dtype=torch.float32, device=logits.device)
        for s in range(0, m, chunk):
            e = min(s + chunk, m)
            x = logits[rows[s:e], cols[s:e]].float().div_(temperature)  # a copy of this chunk only
            lz = torch.logsumexp(x, dim=-1)
            log_z[s:e] = lz
            logprobs[s:e] = x.gather(-1, token_ids[s:e].unsqueeze(-1)).squeeze(-1) - lz
            if compute_entropy:
                logp = x.sub_(lz.unsqueeze(-1))
                entropy[s:e] = -(logp.exp() * logp).sum(-1)
        ctx.save_for_backward(logits, rows, cols, token_ids, log_z)
        ctx.temperature, ctx.chunk = temperature, chunk
        ctx.mark_non_differentiable(entropy)
        return logprobs, entropy

    @staticmethod
    def backward(ctx, grad_logprobs: torch.Tensor, _grad_entropy: torch.Tensor | None):
        logits, rows, cols, token_ids, log_z = ctx.saved_tensors
        grad = torch.zeros_like(logits)
        t = ctx.temperature
        for s in range(0, token_ids.numel(), ctx.chunk):
            e = min(s + ctx.chunk, token_ids.numel())
            p = torch.exp(logits[rows[s:e], cols[s:e]].float().div_(t).sub_(log_z[s:e].unsqueeze(-1)))
            p.neg_().scatter_add_(-1, token_ids[s:e].unsqueeze(-1), torch.ones_like(p[:, :1]))
            grad[rows[s:e], cols[s:e]] = p.mul_((grad_logprobs[s:e] / t).unsqueeze(-1)).to(grad.dtype)
        return grad, None, None, None, None, None, None


def gather_token_logprobs(
    logits: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    token_ids: torch.Tensor,
    temperature: float = 1.0,
    chunk_tokens: int | None = 512,
    compute_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log softmax(logits[rows, cols] / temperature)[token_ids] (M,) in fp32, and the entropies (M,) when asked.

    `logits` (B, K, V) in any float dtype; `rows`, `cols`, `token_ids` (M,) long, every (row, col)
    at most once. `chunk_tokens` positions are converted to fp32 at once; None takes all M at once.
    """
    if logits.dim() != 3 or not rows.shape == cols.shape == token_ids.shape or rows.dim() != 1:
        raise ValueError(f"logits must be (B, K, V) and rows, cols, token_ids (M,), got {tuple(logits.shape)}, "
                         f"{tuple(rows.shape)}, {tuple(cols.shape)}, {tuple(token_ids.shape)}")
    if chunk_tokens is not None and chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be at least 1 or None, got {chunk_tokens}")
    chunk = max(token_ids.numel(), 1) if chunk_tokens is None else chunk_tokens
    logprobs, entropy = _ChunkedTokenLogprobs.apply(logits, rows, cols, token_ids, temperature, chunk,
                                                    compute_entropy)
    return logprobs, (entropy if compute_entropy else None)


def token_logprobs(
    logits: torch.Tensor, token_ids: torch.Tensor, temperature: float = 1.0, chunk_tokens: int | None = 512,
    compute_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`gather_token_logprobs` of every position of (N, V) logits: token_ids (N,) -> (N,), (N,) or None."""
    if logits.dim() != 2 or token_ids.shape != logits.shape[:1]:
        raise ValueError(f"logits must be (N, V) and token_ids (N,), got {tuple(logits.shape)} and "
                         f"{tuple(token_ids.shape)}")
    cols = torch.arange(logits.size(0), device=logits.device)
    return gather_token_logprobs(logits.unsqueeze(0), torch.zeros_like(cols), cols, token_ids, temperature,
                                 chunk_tokens, compute_entropy)
