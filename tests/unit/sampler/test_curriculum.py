"""CurriculumSchedule: the seed's step phases, per-domain and fixed weights, adaptive shifts from outcomes."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from sampler.config import PhaseConfig, SamplerConfig
from sampler.curriculum import CurriculumSchedule

DOMAINS = ("ferry", "grippers")
EARLY, MIDDLE, LATE = (0.7, 0.25, 0.05), (0.4, 0.4, 0.2), (0.2, 0.4, 0.4)


def _w(weights, domain="ferry"):
    return tuple(round(weights[domain][b], 6) for b in ("easy", "medium", "hard"))


@pytest.mark.parametrize(("step", "expected"), [
    (0, EARLY), (299, EARLY), (300, MIDDLE), (699, MIDDLE), (700, LATE), (1000, LATE), (4000, LATE),
])
def test_step_schedule_is_the_seeds(step, expected):
    schedule = CurriculumSchedule(SamplerConfig(max_steps=1000), DOMAINS)
    weights = schedule.weights(step)
    assert _w(weights) == expected == _w(weights, "grippers")


def test_per_domain_and_fixed_schedules():
    hard_first = [PhaseConfig(until=1.0, weights={"easy": 0, "medium": 1, "hard": 3})]
    cfg = SamplerConfig(max_steps=10, schedule="per_domain", domain_phases={"grippers": hard_first})
    weights = CurriculumSchedule(cfg, DOMAINS).weights(9)
    assert _w(weights) == LATE and _w(weights, "grippers") == (0.0, 0.25, 0.75)
    fixed = CurriculumSchedule(SamplerConfig(schedule="fixed", fixed_weights={"easy": 2, "medium": 1, "hard": 1}),
                               DOMAINS)
    assert _w(fixed.weights(0)) == _w(fixed.weights(999)) == (0.5, 0.25, 0.25)


def _outcomes(domain, bucket, successes, failures, label_fail="goal_not_satisfied"):
    out = [{"sample_id": f"{domain}:1", "domain": domain, "bucket": bucket, "reward": 1.0, "label": "success_plans"}
           for _ in range(successes)]
    return out + [{"sample_id": f"{domain}:2", "domain": domain, "bucket": bucket, "reward": -0.3,
                   "label": label_fail} for _ in range(failures)]


def test_adaptive_shifts_toward_the_learnable_bucket():
    cfg = SamplerConfig(max_steps=100, schedule="adaptive", adaptive_min_outcomes=4, adaptive_boost=4.0)
    schedule = CurriculumSchedule(cfg, DOMAINS)
    assert _w(schedule.weights(0)) == EARLY  # nothing observed: the step schedule
    schedule.observe(_outcomes("ferry", "easy", 10, 0))  # solved: not boosted
    schedule.observe(_outcomes("ferry", "medium", 5, 5))  # learnable: boosted
    schedule.observe(_outcomes("ferry", "hard", 0, 3))  # too few outcomes to judge
    schedule.observe([{"sample_id": "ferry:3", "domain": "ferry", "bucket": "hard", "reward": None,
                       "label": "validator_error"}] * 5)  # unjudged: ignored
    weights = schedule.weights(0)
    raw = (0.7, 0.25 * 4, 0.05)
    assert _w(weights) == tuple(round(v / sum(raw), 6) for v in raw)
    assert weights["ferry"]["medium"] > EARLY[1]
    assert _w(weights, "grippers") == EARLY  # per domain
    assert schedule.success_rate("ferry", "hard") is None
    metrics = schedule.metrics()
    assert metrics["curriculum/success/ferry/medium"] == 0.5 and "curriculum/success/ferry/hard" not in metrics

    clone = CurriculumSchedule(cfg, DOMAINS)
    clone.load_state_dict(json.loads(json.dumps(schedule.state_dict())))
    assert clone.weights(0) == schedule.weights(0)


def test_adaptive_window_forgets_old_outcomes():
    cfg = SamplerConfig(schedule="adaptive", adaptive_window=4, adaptive_min_outcomes=4)
    schedule = CurriculumSchedule(cfg, DOMAINS)
    schedule.observe(_outcomes("ferry", "medium", 2, 2))
    assert schedule.success_rate("ferry", "medium") == 0.5
    schedule.observe(_outcomes("ferry", "medium", 4, 0))
    assert schedule.success_rate("ferry", "medium") == 1.0


def test_bad_outcomes_and_configs_are_rejected():
    schedule = CurriculumSchedule(SamplerConfig(schedule="adaptive"), DOMAINS)
    with pytest.raises(ValueError, match="lacks 'label'"):
        schedule.observe([{"sample_id": "ferry:1", "domain": "ferry", "bucket": "easy", "reward": 1.0}])
    with pytest.raises(ValueError, match="unknown domain/bucket"):
        schedule.observe(_outcomes("spanner", "easy", 1, 0))
    with pytest.raises(ValueError, match="curriculum state is for schedule 'adaptive'"):
        CurriculumSchedule(SamplerConfig(), DOMAINS).load_state_dict(schedule.state_dict())
    with pytest.raises(ValidationError, match="end at 1.0"):
        SamplerConfig(phases=[PhaseConfig(until=0.5, weights={"easy": 1, "medium": 0, "hard": 0})])
    with pytest.raises(ValidationError, match="exactly the keys"):
        SamplerConfig(fixed_weights={"easy": 1, "hard": 1})
    with pytest.raises(ValidationError, match="Extra inputs"):
        SamplerConfig(batchsize=3)
