"""Per-step metrics of a GRPO batch (rewards by domain and bucket, labels, lengths) and the metrics writer."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reward_service.result import Completion


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / len(values)
    return mean, math.sqrt(var)


def batch_metrics(
    samples: Sequence[dict], completions: Sequence[Completion], rewards: Sequence[float | None], labels: Sequence[str],
    group_size: int = 1,
) -> dict[str, Any]:
    """Reward mean/std overall, per domain and per bucket; label counts; domain counts; completion lengths.

    `samples[i]` is the prompt of `completions[i]` (already repeated G = `group_size` times by the caller).
    A None reward (validator error) is counted in `reward/none_count` and left out of every mean.
    """
    out: dict[str, Any] = {}
    scored = [r for r in rewards if r is not None]
    out["reward/mean"], out["reward/std"] = _mean_std(scored)
    out["reward/none_count"] = sum(r is None for r in rewards)
    by_domain: dict[str, list[float]] = defaultdict(list)
    by_bucket: dict[str, list[float]] = defaultdict(list)
    success_by_domain: dict[str, list[float]] = defaultdict(list)
    for sample, reward, label in zip(samples, rewards, labels, strict=True):
        success_by_domain[sample["domain"]].append(1.0 if label == "success_plans" else 0.0)
        if reward is None:
            continue
        by_domain[sample["domain"]].append(reward)
        by_bucket[f"{sample['domain']}/{sample.get('bucket', 'all')}"].append(reward)
    for domain, values in sorted(by_domain.items()):
        out[f"reward/{domain}/mean"], out[f"reward/{domain}/std"] = _mean_std(values)
    for key, values in sorted(by_bucket.items()):
        out[f"reward_bucket/{key}/mean"] = _mean_std(values)[0]
    for domain, values in sorted(success_by_domain.items()):
        out[f"success/{domain}"] = sum(values) / len(values)
    out["labels"] = dict(sorted(Counter(labels).items()))
    # each prompt appears G times in a row in `samples`: count every G-th entry (a prompt may repeat in a batch)
    prompts = samples[:: max(1, group_size)]
    out["batch/domain_counts"] = dict(sorted(Counter(s["domain"] for s in prompts).items()))
    out["batch/bucket_counts"] = dict(sorted(Counter(s.get("bucket", "all") for s in prompts).items()))
    lengths = [len(c.token_ids) for c in completions]
    out["completion/length_mean"] = sum(lengths) / max(1, len(lengths))
    out["completion/length_max"] = max(lengths, default=0)
    out["completion/truncated_share"] = sum(c.finish_reason == "length" for c in completions) / max(1, len(completions))
    return out


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


class MetricsWriter:
    """Appends one JSON object per step to `metrics.jsonl` (flushed each step: nothing lost on a crash)."""

    def __init__(self, run_dir: str | Path, wandb_run: Any | None = None) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self._wandb = wandb_run

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, default=_json_default, allow_nan=True)
        with self.path.open("a") as fh:
            fh.write(line + "\n")
        if self._wandb is not None:
            flat = {k: v for k, v in record.items() if isinstance(v, (int, float))}
            for key in ("labels", "batch/domain_counts", "curriculum/weights"):
                for sub, value in (record.get(key) or {}).items():
                    if isinstance(value, (int, float)):
                        flat[f"{key}/{sub}"] = value
            self._wandb.log(flat, step=record.get("step"))


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All step records of a run, in order."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
