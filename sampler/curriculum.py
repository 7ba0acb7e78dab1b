"""CurriculumSchedule: bucket weights per domain for learner step t (step, adaptive, per_domain, fixed)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from sampler.config import BUCKETS, PhaseConfig, SamplerConfig

SUCCESS_LABEL = "success_plans"
Weights = dict[str, dict[str, float]]  # domain -> bucket -> weight (sums to 1 per domain)


def _normalized(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(weights[b] for b in BUCKETS)
    return {b: weights[b] / total for b in BUCKETS}


def phase_weights(phases: list[PhaseConfig], progress: float) -> dict[str, float]:
    """Weights of the first phase whose `until` lies above progress; the last phase from then on."""
    for phase in phases:
        if progress < phase.until:
            return _normalized(phase.weights)
    return _normalized(phases[-1].weights)


class CurriculumSchedule:
    """Which buckets a step draws from, per domain; `observe` feeds the adaptive schedule.

    - step: the seed's phases by progress = step / max_steps (the default);
    - per_domain: the same, with phases set per domain (others use the shared phases);
    - fixed: constant weights;
    - adaptive: the step schedule's weights, with every bucket whose recent success rate lies in
      [adaptive_low, adaptive_high] multiplied by adaptive_boost. Those buckets are neither
      solved nor hopeless, so their groups have reward variance (non-zero advantages).
      A bucket with fewer than adaptive_min_outcomes judged completions keeps its base weight.
    """

    def __init__(self, cfg: SamplerConfig, domains: Iterable[str]) -> None:
        self.kind = cfg.schedule
        self.domains = tuple(domains)
        self.max_steps = cfg.max_steps
        self._phases = {d: cfg.domain_phases.get(d, cfg.phases) if self.kind == "per_domain" else cfg.phases
                        for d in self.domains}
        self._fixed = _normalized(cfg.fixed_weights)
        self._window = cfg.adaptive_window
        self._min_outcomes = cfg.adaptive_min_outcomes
        self._low, self._high, self._boost = cfg.adaptive_low, cfg.adaptive_high, cfg.adaptive_boost
        self._recent: dict[tuple[str, str], deque[int]] = {
            (d, b): deque(maxlen=self._window) for d in self.domains for b in BUCKETS
        }
        self._last: tuple[int, Weights] | None = None

    def progress(self, step: int) -> float:
        return step / self.max_steps

    def weights(self, step: int) -> Weights:
        """Normalized bucket weights of every domain at learner step `step`."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if self.kind == "fixed":
            out = {d: dict(self._fixed) for d in self.domains}
        else:
            out = {d: phase_weights(self._phases[d], self.progress(step)) for d in self.domains}
        if self.kind == "adaptive":
            out = {d: self._adapt(d, w) for d, w in out.items()}
        self._last = (step, out)
        return out

    def _adapt(self, domain: str, base: dict[str, float]) -> dict[str, float]:
        boosted = {}
        for b in BUCKETS:
            rate = self.success_rate(domain, b)
            in_band = rate is not None and self._low <= rate <= self._high
            boosted[b] = base[b] * (self._boost if in_band else 1.0)
        return _normalized(boosted)

    def success_rate(self, domain: str, bucket: str) -> float | None:
        """Recent success fraction of a (domain, bucket), None while it has too few outcomes."""
        recent = self._recent[(domain, bucket)]
        return sum(recent) / len(recent) if len(recent) >= self._min_outcomes else None

    def domain_success_rate(self, domain: str) -> float | None:
        """Recent success fraction over all buckets of a domain, None while it has too few outcomes."""
        recent = [x for b in BUCKETS for x in self._recent[(domain, b)]]
        return sum(recent) / len(recent) if len(recent) >= self._min_outcomes else None

    def observe(self, outcomes: Iterable[Mapping[str, Any]]) -> None:
        """Record scored completions: dicts with domain, bucket, reward and label (reward None = unjudged)."""
        for out in outcomes:
            for key in ("domain", "bucket", "label", "reward"):
                if key not in out:
                    raise ValueError(f"outcome {out.get('sample_id', '?')} lacks '{key}'")
            key = (out["domain"], out["bucket"])
            if key not in self._recent:
                raise ValueError(f"outcome {out.get('sample_id', '?')} names unknown domain/bucket {key}")
            if out["reward"] is None:
                continue  # the validator failed: says nothing about the problem's difficulty
            self._recent[key].append(int(out["label"] == SUCCESS_LABEL))

    def metrics(self) -> dict[str, float]:
        """Weights of the last step asked for and recent success rates, as flat `curriculum/...` keys."""
        out: dict[str, float] = {}
        if self._last is not None:
            step, weights = self._last
            out["curriculum/progress"] = self.progress(step)
            for d, w in weights.items():
                for b, v in w.items():
                    out[f"curriculum/weight/{d}/{b}"] = v
        for (d, b) in self._recent:
            rate = self.success_rate(d, b)
            if rate is not None:
                out[f"curriculum/success/{d}/{b}"] = rate
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "recent": {f"{d}/{b}": list(v) for (d, b), v in self._recent.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state["kind"] != self.kind:
            raise ValueError(f"curriculum state is for schedule '{state['kind']}', this one is '{self.kind}'")
        for name, values in state["recent"].items():
            d, b = name.rsplit("/", 1)
            if (d, b) in self._recent:
                self._recent[(d, b)] = deque(values, maxlen=self._window)
