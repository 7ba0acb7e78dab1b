"""prompt_lengths.txt: token lengths of the run's prompts per domain, as the rollout engines will see them.

Written once at the start of a run (DESIGN.md "Run directory"), so a user sees before the first step
whether prompts fit `rollout.max_prompt_tokens` / `learner.max_prompt_length` and how long
generation plus prompt will be. Prompts are encoded exactly as the engines encode them
(`encode_prompt`: chat template when the tokenizer has one), from the first `max_per_domain`
records of each train file (and of test/ when present), without truncation.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LengthStats:
    """Token lengths of one (split, domain)."""

    split: str
    domain: str
    count: int
    min: int
    mean: float
    p50: int
    p95: int
    max: int
    over_limit: int  # prompts longer than the limit (their start is cut off); 0 without a limit


def _percentile(sorted_values: list[int], q: float) -> int:
    return sorted_values[min(len(sorted_values) - 1, int(q * (len(sorted_values) - 1) + 0.5))]


def length_stats(split: str, domain: str, lengths: list[int], limit: int | None) -> LengthStats:
    if not lengths:
        raise ValueError(f"{split}/{domain}: no prompts to measure")
    values = sorted(lengths)
    return LengthStats(split, domain, len(values), values[0], sum(values) / len(values), _percentile(values, 0.5),
                       _percentile(values, 0.95), values[-1], sum(v > limit for v in values) if limit else 0)


def _prompts(path: Path, max_per_domain: int, skip_bad: bool = False) -> list[str]:
    out: list[str] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if len(out) >= max_per_domain:
                break
            if not line.strip():
                continue
            try:
                out.append(json.loads(line)["prompt"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                if skip_bad:  # sampler.on_bad_record: skip; the pre-flight reported the line
                    continue
                raise ValueError(f"{path}:{lineno}: not a record with a 'prompt' ({exc})") from exc
    return out


def measure(tokenizer: Any, data_root: Path, domains: list[str] | None, *, limit: int | None,
            use_chat_template: bool = True, max_per_domain: int = 2000, skip_bad: bool = False) -> list[LengthStats]:
    """Stats per (split, domain) for the train files of `data_root` and its test/ split."""
    from learner.policy.prompt_encoding import encode_prompt

    stats = []
    for split, folder in (("train", data_root), ("test", data_root / "test")):
        for path in sorted(folder.glob("*.jsonl")):
            if domains and path.stem not in domains:
                continue
            lengths = [len(encode_prompt(tokenizer, p, use_chat_template=use_chat_template, max_prompt_tokens=None))
                       for p in _prompts(path, max_per_domain, skip_bad)]
            if lengths:
                stats.append(length_stats(split, path.stem, lengths, limit))
    return stats


def format_table(stats: list[LengthStats], limit: int | None) -> str:
    head = f"# prompt lengths in tokens (limit: {limit if limit else 'none'})\n"
    cols = f"{'split':<6}{'domain':<14}{'count':>7}{'min':>6}{'mean':>8}{'p50':>6}{'p95':>6}{'max':>6}{'over':>6}\n"
    rows = "".join(f"{s.split:<6}{s.domain:<14}{s.count:>7}{s.min:>6}{s.mean:>8.1f}{s.p50:>6}{s.p95:>6}{s.max:>6}"
                   f"{s.over_limit:>6}\n" for s in stats)
    return head + cols + rows


def write_prompt_lengths(run_dir: Path, model_path: str, data_root: Path, domains: list[str] | None,
                         limit: int | None, max_per_domain: int = 2000, skip_bad: bool = False) -> list[LengthStats]:
    """Measure with the run's tokenizer, write `run_dir/prompt_lengths.txt`, warn about over-long prompts."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    stats = measure(tokenizer, data_root, domains, limit=limit, max_per_domain=max_per_domain, skip_bad=skip_bad)
    (run_dir / "prompt_lengths.txt").write_text(format_table(stats, limit))
    over = [s for s in stats if s.over_limit]
    for s in over:
        log.warning("%s/%s: %d of %d prompts are longer than %d tokens and lose their start (longest %d)",
                    s.split, s.domain, s.over_limit, s.count, limit, s.max)
    return stats
