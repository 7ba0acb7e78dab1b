"""Supervised warm start on (prompt, gold plan) pairs, loss on plan tokens only.

Run line: python -m learner.sft --model PATH|tiny --data-root DIR --out DIR [--minutes M] [--steps N] [--lr 1e-3]
          [--lr-schedule cosine|constant]
"""

from __future__ import annotations

import os

# libgomp reads this when torch loads: idle OpenMP threads sleep instead of spinning, so several
# processes on a few cores (Ray actors, the driver) do not starve each other. Only effective when
# this module is imported before torch, as `python -m learner.sft` does; actors set it themselves.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from collections.abc import Mapping, Sequence  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SFTMetrics:
    """What one SFT run did: steps, time, throughput and the loss curve (mean loss per plan token)."""

    steps: int
    seconds: float
    tokens: int  # non-padding tokens seen, prompt and plan
    tokens_per_second: float
    first_loss: float
    final_loss: float  # mean of the last `log_every` steps
    loss_history: tuple[tuple[int, float], ...]  # (step, loss) every `log_every` steps


def encode_pair(tokenizer, prompt: str, response: str, max_length: int | None = None) -> tuple[list[int], list[int]]:
    """(input ids, labels): the prompt as generation sees it, then the plan and EOS; prompt labels are -100.

    The prompt is encoded exactly as the rollout engines encode it (`encode_prompt`: through the
    tokenizer's chat template when it has one), so SFT trains the policy on the inputs GRPO samples from.
    """
    from learner.policy.prompt_encoding import encode_prompt

    prompt_ids = encode_prompt(tokenizer, prompt, use_chat_template=True, max_prompt_tokens=None)
    plan_ids = tokenizer(response, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    if max_length is not None and len(prompt_ids) + len(plan_ids) > max_length:
        keep = max(max_length - len(plan_ids), 1)
        prompt_ids = prompt_ids[-keep:]  # drop the start of the prompt, never the plan
        plan_ids = plan_ids[: max_length - len(prompt_ids)]
    return prompt_ids + plan_ids, [-100] * len(prompt_ids) + plan_ids


def _collate(pairs: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in pairs)
    ids = [x + [pad_id] * (width - len(x)) for x, _ in pairs]
    labels = [y + [-100] * (width - len(y)) for _, y in pairs]
    mask = [[1] * len(x) + [0] * (width - len(x)) for x, _ in pairs]
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}


def _lr_factor(step: int, warmup_steps: int, schedule: str, steps: int | None, minutes: float | None,
               elapsed_s: float) -> float:
    """Multiplier of the SFT lr at `step`: linear warmup, then 1 (constant) or a cosine to 0 over the budget."""
    warm = min(1.0, (step + 1) / max(warmup_steps, 1))
    if schedule == "constant":
        return warm
    done = max(step / steps if steps else 0.0, elapsed_s / (60 * minutes) if minutes else 0.0)
    return warm * 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))


def run_sft(
    model: torch.nn.Module,
    tokenizer,
    records: Sequence[Mapping[str, str]],
    *,
    steps: int | None = None,
    minutes: float | None = None,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    warmup_steps: int = 10,
    lr_schedule: str = "constant",
    max_grad_norm: float = 1.0,
    max_length: int | None = None,
    seed: int = 0,
    log_every: int = 10,
    progress: bool = True,
) -> SFTMetrics:
    """Train `model` in place on records with `prompt` and `response` (the gold plan) until `steps` or `minutes`.

    Loss is the mean cross-entropy over plan tokens (and the EOS after them); prompt tokens are
    masked. AdamW, linear warmup then a constant lr or a cosine decay to 0 over the budget (the
    larger of the step and the time fraction used), gradient clipping. Works on a plain HF model or a
    PEFT-wrapped one. Deterministic batches for a seed.
    """
    if steps is None and minutes is None:
        raise ValueError("run_sft needs a budget: give steps, minutes or both")
    if lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
    pairs = [encode_pair(tokenizer, r["prompt"], r["response"], max_length) for r in records]
    if not pairs:
        raise ValueError("run_sft got no records")
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    rng = random.Random(seed)
    order: list[int] = []
    deadline = time.monotonic() + minutes * 60 if minutes is not None else None
    start, tokens, step = time.monotonic(), 0, 0
    recent: list[float] = []
    history: list[tuple[int, float]] = []
    first_loss = float("nan")
    model.train()
    bar = tqdm(total=steps, desc="sft", unit="step", disable=not progress)
    while (steps is None or step < steps) and (deadline is None or time.monotonic() < deadline):
        if len(order) < batch_size:  # reshuffle per epoch; a batch never holds a record twice
            fresh = list(range(len(pairs)))
            rng.shuffle(fresh)
            order.extend(fresh)
        idx, order = order[:batch_size], order[batch_size:]
        for group in opt.param_groups:
            group["lr"] = lr * _lr_factor(step, warmup_steps, lr_schedule, steps, minutes, time.monotonic() - start)
        batch = {k: v.to(device) for k, v in _collate([pairs[i] for i in idx], tokenizer.pad_token_id).items()}
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        opt.step()
        step += 1
        tokens += int(batch["attention_mask"].sum())
        value = float(loss.detach())
        first_loss = value if step == 1 else first_loss
        recent = (recent + [value])[-log_every:]
        if step % log_every == 0:
            history.append((step, sum(recent) / len(recent)))
            log.info("sft step %d loss %.4f", step, history[-1][1])
        bar.update(1)
        bar.set_postfix(loss=f"{value:.4f}")
    bar.close()
    model.eval()
    seconds = time.monotonic() - start
    return SFTMetrics(
        steps=step,
        seconds=seconds,
        tokens=tokens,
        tokens_per_second=tokens / seconds if seconds > 0 else 0.0,
        first_loss=first_loss,
        final_loss=sum(recent) / len(recent) if recent else float("nan"),
        loss_history=tuple(history),
    )


def load_sft_records(data_root: str | Path, domains: Sequence[str] | None = None, skip_bad: bool = False) -> list[dict]:
    """Records with a `response` (gold plan) from `<data_root>/<domain>.jsonl`; records without one, or whose
    `class_label` (the response's label) is not success_plans, are skipped. A malformed line is an error
    with file:line, or skipped with `skip_bad` (a run with sampler.on_bad_record: skip, whose pre-flight
    already reported it)."""
    root = Path(data_root)
    files = [root / f"{d}.jsonl" for d in domains] if domains else sorted(root.glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no <domain>.jsonl files in {root}")
    records: list[dict] = []
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"domain file {path} does not exist")
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                if skip_bad:
                    continue
                raise ValueError(f"{path}:{lineno}: malformed JSON: {err.msg}") from err
            if not isinstance(rec, dict) or not isinstance(rec.get("prompt"), str):
                if skip_bad:
                    continue
                raise ValueError(f"{path}:{lineno}: a record needs a string 'prompt'")
            # class_label is the label of the gold plan in `response`: only a successful one is imitated
            if (isinstance(rec.get("response"), str) and rec["response"].strip()
                    and rec.get("class_label", "success_plans") == "success_plans"):
                records.append(rec)
    if not records:
        raise ValueError(f"no record under {root} has a gold plan in 'response'")
    return records


def cpu_threads() -> int:
    """CPUs this process may run on (respects affinity masks and containers' cpusets)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def main(argv: Sequence[str] | None = None) -> SFTMetrics:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from learner.policy.tiny import build_tiny_model, build_tiny_tokenizer

    ap = argparse.ArgumentParser(prog="python -m learner.sft", description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="checkpoint path, or 'tiny' to build a tiny model on the data")
    ap.add_argument("--data-root", required=True, help="directory of <domain>.jsonl with prompt and response")
    ap.add_argument("--out", required=True, help="where the trained model, tokenizer and sft_metrics.json go")
    ap.add_argument("--domains", nargs="*", default=None, help="domains to train on (default: every jsonl)")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps (default: until --minutes)")
    ap.add_argument("--minutes", type=float, default=None, help="wall-clock budget (default 3 without --steps)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant",
                    help="after warmup: constant lr, or cosine decay to 0 over the budget")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=None, help="truncate prompt+plan to this many tokens")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all CPUs of this process)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # One thread per core we own: more threads than cores only adds contention on a shared box.
    torch.set_num_threads(args.threads or cpu_threads())
    torch.manual_seed(args.seed)
    records = load_sft_records(args.data_root, args.domains)
    out = Path(args.out)
    if args.model == "tiny":
        tok = build_tiny_tokenizer([t for r in records for t in (r["prompt"], r["response"])])
        model_path = build_tiny_model(tok, out, seed=args.seed)
    else:
        model_path = Path(args.model)
    model = AutoModelForCausalLM.from_pretrained(str(model_path))
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # common for base checkpoints; padding is masked anyway
    minutes = args.minutes if args.minutes is not None or args.steps is not None else 3.0
    metrics = run_sft(
        model, tokenizer, records, steps=args.steps, minutes=minutes, lr=args.lr, lr_schedule=args.lr_schedule,
        batch_size=args.batch_size, max_length=args.max_length, seed=args.seed,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    (out / "sft_metrics.json").write_text(json.dumps(asdict(metrics), indent=2))
    log.info("sft done: %d steps, loss %.4f -> %.4f, %.0f tokens/s, saved to %s",
             metrics.steps, metrics.first_loss, metrics.final_loss, metrics.tokens_per_second, out)
    return metrics


if __name__ == "__main__":
    main()
