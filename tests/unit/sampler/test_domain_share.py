"""Success-weighted domain emphasis: failing domains get more draws, minimums and totals exact, deterministic."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from pydantic import ValidationError

from sampler.config import SamplerConfig
from sampler.curriculum import CurriculumSchedule
from sampler.domain_share import WEIGHT_FLOOR, allot, domain_weights
from sampler.stream import BalancedBatchStream
from sampler.synthetic import DOMAINS


def _stream(root, **kw) -> BalancedBatchStream:
    base = {"batch_size": 10, "max_steps": 1000, "seed": 3, "domain_weighting": "success", "adaptive_min_outcomes": 4}
    return BalancedBatchStream.from_config(SamplerConfig(data_root=str(root), **{**base, **kw}))


def _judge(stream, success: dict[str, float], n: int = 20) -> None:
    """n outcomes per domain, the given fraction of them successes."""
    stream.observe([{"sample_id": f"{d}:0", "domain": d, "bucket": "easy", "reward": 1.0 if k < rate * n else 0.0,
                     "label": "success_plans" if k < rate * n else "goal_not_satisfied"}
                    for d, rate in success.items() for k in range(n)])


def test_unjudged_domains_share_equally_and_serve_the_balanced_batches(data_root):
    success, balanced = _stream(data_root), _stream(data_root, domain_weighting="balanced")
    for t in range(30):
        assert success.batch(t) == balanced.batch(t)
    m = success.metrics()
    assert all(m[f"sampler/domain_weight/{d}"] == pytest.approx(0.2) for d in DOMAINS)
    assert not any(k.startswith("sampler/domain_weight") for k in balanced.metrics())


def test_a_failing_domain_gets_more_draws_and_every_domain_its_minimum(data_root):
    stream = _stream(data_root, batch_size=20)
    _judge(stream, {"ferry": 0.0, "grippers": 1.0, "spanner": 1.0, "delivery": 0.9, "blocksworld": 1.0})
    for t in range(20):
        counts = Counter(s["domain"] for s in stream.batch(t))
        assert sum(counts.values()) == 20 and min(counts[d] for d in DOMAINS) >= 1
        assert counts["ferry"] >= 12 > counts["delivery"] >= counts["grippers"]
    m = stream.metrics()
    assert m["sampler/domain/ferry"] >= 12
    assert sum(m[f"sampler/domain_weight/{d}"] for d in DOMAINS) == pytest.approx(1.0)
    assert m["sampler/domain_weight/ferry"] > m["sampler/domain_weight/delivery"] > m["sampler/domain_weight/grippers"]


def test_minimum_per_shard_and_exact_shard_totals(data_root):
    stream = _stream(data_root, batch_size=40, data_parallel_size=2, domain_min_per_shard=2)
    _judge(stream, {"ferry": 0.0, "grippers": 0.5, "spanner": 1.0, "delivery": 1.0, "blocksworld": 1.0})
    for t in range(20):
        shards = stream.shards(stream.batch(t))
        counts = [Counter(s["domain"] for s in shard) for shard in shards]
        assert [sum(c.values()) for c in counts] == [20, 20] and counts[0] == counts[1]
        assert all(c[d] >= 2 for c in counts for d in DOMAINS)
        assert counts[0]["ferry"] > counts[0]["grippers"] > counts[0]["spanner"]


def test_success_weighting_is_deterministic_and_resumes(data_root):
    def run(stream, start, stop):
        out = []
        for t in range(start, stop):
            batch = stream.batch(t)
            out.append([s["sample_id"] for s in batch])
            _judge(stream, {d: (t + k) % 3 / 2 for k, d in enumerate(DOMAINS)}, n=4)
        return out

    full = run(_stream(data_root), 0, 40)
    assert full == run(_stream(data_root), 0, 40)
    first = _stream(data_root)
    run(first, 0, 20)
    resumed = _stream(data_root)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert resumed.metrics()["sampler/domain_weight/ferry"] == first.metrics()["sampler/domain_weight/ferry"]
    assert run(resumed, 20, 40) == full[20:]


def test_domain_weights_floor_and_neutral_weight():
    cfg = SamplerConfig(adaptive_min_outcomes=2)
    schedule = CurriculumSchedule(cfg, ("ferry", "grippers", "spanner"))
    assert domain_weights(schedule, schedule.domains) == dict.fromkeys(schedule.domains, 1.0)
    schedule.observe([{"domain": "ferry", "bucket": "hard", "reward": 1.0, "label": "success_plans"}] * 2
                     + [{"domain": "grippers", "bucket": "easy", "reward": 0.0, "label": "goal_not_satisfied"}] * 2)
    w = domain_weights(schedule, schedule.domains)
    assert w["ferry"] == WEIGHT_FLOOR and w["grippers"] == 1 + WEIGHT_FLOOR
    assert w["spanner"] == pytest.approx((w["ferry"] + w["grippers"]) / 2)  # not judged: the mean


def test_allot_is_exact_with_rotating_ties():
    assert allot(10, {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0, "e": 1.0}, 1) == dict.fromkeys("abcde", 2)
    assert allot(10, {"a": 8.0, "b": 1.0, "c": 1.0}, 2) == {"a": 5, "b": 3, "c": 2}  # 3.2 | 0.4 | 0.4, tie to b
    ties = [allot(4, {"a": 1.0, "b": 1.0, "c": 1.0}, 1, first=k) for k in range(3)]
    assert ties == [{"a": 2, "b": 1, "c": 1}, {"a": 1, "b": 2, "c": 1}, {"a": 1, "b": 1, "c": 2}]
    with pytest.raises(ValueError, match=r"domain_min_per_shard \(2\) x num_domains \(3\) = 6 exceeds"):
        allot(5, {"a": 1.0, "b": 1.0, "c": 1.0}, 2)


def test_success_weighting_needs_no_divisibility_by_domains(data_root):
    stream = _stream(data_root, batch_size=12, domain_min_per_shard=2)
    counts = Counter(s["domain"] for s in stream.batch(0))  # 12 = 5 x 2 + 2, the 2 to tied domains
    assert sum(counts.values()) == 12 and sorted(counts.values()) == [2, 2, 2, 3, 3]


def test_bad_share_configs_are_rejected(data_root):
    with pytest.raises(ValidationError, match=r"domain_min_per_shard \(3\) x num_domains \(4\) = 12 exceeds the "
                                              r"shard size batch_size / data_parallel_size = 10"):
        SamplerConfig(domain_weighting="success", domains=["a", "b", "c", "d"], batch_size=20,
                      data_parallel_size=2, domain_min_per_shard=3)
    with pytest.raises(ValidationError, match=r"batch_size \(9\) must be divisible by data_parallel_size \(2\)"):
        SamplerConfig(domain_weighting="success", batch_size=9, data_parallel_size=2)
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        SamplerConfig(domain_min_per_shard=0)
    SamplerConfig(domain_min_per_shard=5, batch_size=4)  # balanced: the minimum is not used
    # domains null: known only once the stream has found the files
    with pytest.raises(ValueError, match=r"domain_min_per_shard \(3\) x num_domains \(5\) = 15 exceeds"):
        _stream(data_root, domain_min_per_shard=3)
