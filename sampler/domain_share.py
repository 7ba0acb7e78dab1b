"""Success-weighted domain emphasis: how many of a shard's draws each domain gets, from recent failure rates.

With `domain_weighting: success` a domain the policy still fails gets more of each shard than one
it has solved, while every domain keeps `domain_min_per_shard` (so its success rate stays measured).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from sampler.curriculum import CurriculumSchedule

WEIGHT_FLOOR = 0.05  # added to every failure rate: a solved domain keeps a small share beyond its minimum


def domain_weights(schedule: CurriculumSchedule, domains: Sequence[str]) -> dict[str, float]:
    """Weight per domain: WEIGHT_FLOOR + recent failure rate (1 - success over all its buckets).

    A domain not judged yet (fewer than adaptive_min_outcomes outcomes) gets the mean weight of the
    judged ones, so it is neither favoured nor starved; with none judged all weights are equal.
    """
    rates = {d: schedule.domain_success_rate(d) for d in domains}
    judged = {d: WEIGHT_FLOOR + (1.0 - r) for d, r in rates.items() if r is not None}
    neutral = sum(judged.values()) / len(judged) if judged else 1.0
    return {d: judged.get(d, neutral) for d in domains}


def allot(total: int, weights: Mapping[str, float], minimum: int, first: int = 0) -> dict[str, int]:
    """Counts per domain summing to `total`: `minimum` each, the rest by largest remainder of the weights.

    Equal remainders go to the domains in their order starting at index `first` (the stream passes
    the step, so ties rotate instead of always favouring the first domain).
    """
    names = list(weights)
    spare = total - minimum * len(names)
    if spare < 0:
        raise ValueError(f"domain_min_per_shard ({minimum}) x num_domains ({len(names)}) = "
                         f"{minimum * len(names)} exceeds the shard size {total}")
    weight_sum = sum(weights.values())
    quotas = {d: spare * weights[d] / weight_sum for d in names}
    counts = {d: minimum + math.floor(q) for d, q in quotas.items()}
    left = total - sum(counts.values())
    rank = {d: (k - first) % len(names) for k, d in enumerate(names)}
    for d in sorted(names, key=lambda d: (-(quotas[d] - math.floor(quotas[d])), rank[d]))[:left]:
        counts[d] += 1
    return counts
