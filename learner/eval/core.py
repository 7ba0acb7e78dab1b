"""Held-out evaluation core: generate for test problems, score every plan, success per domain with 95 % CIs."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reward_service.contracts import Completion


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate (well behaved at 0 and n)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def load_test_samples(data_root: str | Path, domains: Sequence[str] | None = None, split: str = "test",
                      max_per_domain: int | None = None, sampler: Any = None) -> list[dict[str, Any]]:
    """Held-out records as samples (`sample_id` = `<split>:<domain>:<i>`), meta paths relative to data_root.

    With `sampler` (the run's SamplerConfig) the records go through the sampler's loader, so the
    split follows the same rules and skips as training (pddl_root, on_bad_record, the PDDL check).
    """
    root = Path(data_root)
    folder = root / split if split != "train" else root
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no '{split}' split (expected {folder}/<domain>.jsonl)")
    samples: list[dict[str, Any]] = []
    for path, rows in _split_records(folder, domains, sampler):
        domain = path.stem
        for i, rec in enumerate(rows[: max_per_domain or None]):
            samples.append({**rec, "domain": domain, "sample_id": f"{split}:{domain}:{i}",
                            "bucket": rec.get("bucket", "all")})
    if not samples:
        raise FileNotFoundError(f"{folder}: no held-out records for domains {list(domains or []) or 'any'}")
    return samples


def _split_records(folder: Path, domains: Sequence[str] | None, sampler: Any) -> list[tuple[Path, list[dict]]]:
    paths = [p for p in sorted(folder.glob("*.jsonl")) if not domains or p.stem in domains]
    if sampler is None:
        return [(p, _read_jsonl(p)) for p in paths]
    from sampler.records import load_records, pddl_root

    cfg = sampler.model_copy(update={"data_root": str(folder), "pddl_root": pddl_root(sampler),
                                     "domains": [p.stem for p in paths]})
    if not paths:
        return []
    index = load_records(cfg, list_ignored=False)
    out = [(Path(idx.path), [idx.record(i) for i in range(len(idx))]) for idx in index.domains.values()]
    for idx in index.domains.values():
        idx.close()
    return out


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open() as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: invalid JSON: {err.msg} at column {err.colno}") from None
    return rows


@dataclass
class DomainResult:
    n: int = 0
    successes: int = 0
    labels: Counter = field(default_factory=Counter)
    plan_lengths: list[int] = field(default_factory=list)
    gold_lengths: list[int] = field(default_factory=list)
    pass_k: int = 0  # problems with at least one success among k samples
    problems: int = 0

    def to_dict(self) -> dict[str, Any]:
        rate = self.successes / self.n if self.n else 0.0
        lo, hi = wilson_interval(self.successes, self.n)
        return {
            "n": self.n, "success_rate": rate, "ci95": [lo, hi],
            "pass_at_k": self.pass_k / self.problems if self.problems else 0.0,
            "problems": self.problems,
            "labels": dict(sorted(self.labels.items())),
            "mean_plan_length": sum(self.plan_lengths) / len(self.plan_lengths) if self.plan_lengths else None,
            "mean_gold_length": sum(self.gold_lengths) / len(self.gold_lengths) if self.gold_lengths else None,
        }


def summarize(samples: Sequence[dict], completions: Sequence[Completion], scores: Sequence[Any],
              k: int) -> dict[str, Any]:
    """Success per domain and per (domain, bucket) with Wilson CIs, pass@k, label mix, plan vs gold length."""
    by_domain: dict[str, DomainResult] = defaultdict(DomainResult)
    by_bucket: dict[str, DomainResult] = defaultdict(DomainResult)
    for i, sample in enumerate(samples):
        group = scores[i * k : (i + 1) * k]
        for key, table in ((sample["domain"], by_domain), (f"{sample['domain']}/{sample.get('bucket', 'all')}",
                                                          by_bucket)):
            res = table[key]
            res.problems += 1
            res.pass_k += any(s.label.value == "success_plans" for s in group)
            for s in group:
                res.n += 1
                res.successes += s.label.value == "success_plans"
                res.labels[s.label.value] += 1
                if s.label.value == "success_plans":
                    res.plan_lengths.append(s.plan_length)
                    gold = sample.get("meta", {}).get("reference_plan_length")
                    if gold:
                        res.gold_lengths.append(int(gold))
    total = DomainResult()
    for res in by_domain.values():
        total.n += res.n
        total.successes += res.successes
        total.problems += res.problems
        total.pass_k += res.pass_k
        total.labels.update(res.labels)
    return {
        "k": k,
        "overall": total.to_dict(),
        "domains": {d: r.to_dict() for d, r in sorted(by_domain.items())},
        "buckets": {b: r.to_dict() for b, r in sorted(by_bucket.items())},
    }


def evaluate(generate: Callable[[list[str], list[str], int], list[Completion]],
             score: Callable[[list[Completion], list[dict]], list[Any]],
             samples: Sequence[dict], k: int = 1) -> dict[str, Any]:
    """Generate k completions per held-out sample with `generate`, score them with `score`, summarize."""
    prompts = [s["prompt"] for s in samples]
    ids = [s["sample_id"] for s in samples]
    completions = generate(prompts, ids, k)
    repeated = [s for s in samples for _ in range(k)]
    scores = score(completions, repeated)
    return summarize(samples, completions, scores, k)


def format_table(before: dict[str, Any] | None, after: dict[str, Any]) -> str:
    """A console table of success per domain (before -> after when both are given)."""
    lines = [f"{'domain':<14}{'n':>5}  {'before':>16}  {'after':>16}" if before else
             f"{'domain':<14}{'n':>5}  {'success':>16}  {'pass@k':>7}"]
    for domain, res in list(after["domains"].items()) + [("overall", after["overall"])]:
        cell = f"{res['success_rate']:.2f} [{res['ci95'][0]:.2f},{res['ci95'][1]:.2f}]"
        if before:
            b = before["domains"].get(domain) if domain != "overall" else before["overall"]
            bcell = f"{b['success_rate']:.2f} [{b['ci95'][0]:.2f},{b['ci95'][1]:.2f}]" if b else "-"
            lines.append(f"{domain:<14}{res['n']:>5}  {bcell:>16}  {cell:>16}")
        else:
            lines.append(f"{domain:<14}{res['n']:>5}  {cell:>16}  {res['pass_at_k']:>7.2f}")
    return "\n".join(lines)
