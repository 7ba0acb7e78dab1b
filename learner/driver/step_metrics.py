"""Per-step metrics of a GRPO batch (rewards by domain and bucket, labels, lengths) and the metrics writer."""

from __future__ import annotations

import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reward_service.contracts import Completion
from reward_service.debug_log import replace_lines

log = logging.getLogger(__name__)


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


def read_jsonl_records(path: str | Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, in order; a line that is not a JSON object is dropped with a warning.

    A crash mid-write leaves the last line cut short (a torn line): it is dropped, never fatal, and the
    warning names the file and line. Lines may be written by a live run while this reads.
    """
    return [record for _, record in _records_with_lines(Path(path))]


def _records_with_lines(path: Path, lines: list[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(line, record) of every readable JSON-object line of `path` (or of `lines`, its text already read)."""
    if lines is None:
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            where = "the last line, cut by a crash mid-write?" if n == len(lines) else "not JSON"
            log.warning("%s:%d: dropped (%s: %s)", path, n, where, exc.msg)
            continue
        if not isinstance(record, dict):
            log.warning("%s:%d: dropped (a %s, not a JSON object)", path, n, type(record).__name__)
            continue
        out.append((line, record))
    return out


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All step records of a run's metrics.jsonl, in order (a torn last line dropped with a warning)."""
    return read_jsonl_records(Path(run_dir) / "metrics.jsonl")


def truncate_metrics(path: str | Path, start_step: int) -> int:
    """Rewrite metrics.jsonl without the records of steps >= `start_step`; returns how many lines were dropped.

    A resume from the checkpoint of step k - 1 runs step k again, so the records a crashed run wrote after
    that checkpoint would appear twice. Torn or unreadable lines go too (read_jsonl_records). Kept lines
    are copied as they were; the file is replaced atomically (written beside it, fsynced, renamed), so a
    crash here loses no kept record.
    """
    path = Path(path)
    if not path.exists():
        return 0
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    total = sum(1 for line in lines if line.strip())
    keep = [line for line, r in _records_with_lines(path, lines)
            if isinstance(r.get("step"), int) and r["step"] < start_step]
    if lines == keep and (not text or text.endswith("\n")):
        return 0  # every line kept and the last one ended: the file stays as it is
    replace_lines(path, keep)
    if total > len(keep):
        log.info("%s: %d line(s) of steps >= %d (or unreadable) dropped; those steps run again", path,
                 total - len(keep), start_step)
    return total - len(keep)

