"""The step record -> Ray metric values mapping of actors.monitoring (pure; the export is an integration test)."""

from __future__ import annotations

import math

from actors.monitoring import METRICS, MetricSample, metric_samples, prometheus_name

RECORD = {
    "step": 7, "reward/mean": 0.25, "reward/ferry/mean": 0.5, "reward/ferry/std": 0.1, "reward/grippers/mean": math.nan,
    "success/ferry": 0.75, "labels": {"success_plans": 6, "plan_format_error": 2}, "queue/reward_pending": 3,
    "policy_version_lag": 1, "rollout/tokens_per_second": 800.0, "frac_zero_std_groups": 0.5,
    "time/reward": 0.5, "time/rollout": 2.0, "time/step": 3.0, "reward_bucket/ferry/easy/mean": 0.9,
    "rollout/idle_ratio": 0.25, "learner/idle_ratio": 0.6,
}


def by_name(samples: list[MetricSample]) -> dict[tuple[str, tuple], float]:
    return {(s.name, s.tags): s.value for s in samples}


def test_record_maps_to_metrics_with_tags():
    got = by_name(metric_samples(RECORD, [3.0, 40.0]))
    assert got[("step", ())] == 7
    assert got[("reward_mean", (("domain", "all"),))] == 0.25
    assert got[("reward_mean", (("domain", "ferry"),))] == 0.5
    assert got[("success_rate", (("domain", "ferry"),))] == 0.75
    assert got[("plans_scored", ())] == 8
    assert got[("plans_scored_per_second", ())] == 16.0  # 8 plans in 0.5 s
    assert got[("queue_length", (("queue", "reward_pending"),))] == 3
    assert got[("policy_version_lag", ())] == 1 and got[("rollout_tokens_per_second", ())] == 800.0
    assert got[("idle_ratio", (("role", "rollout"),))] == 0.25 and got[("idle_ratio", (("role", "learner"),))] == 0.6
    assert got[("phase_seconds", (("phase", "rollout"),))] == 2.0 and got[("phase_seconds", (("phase", "step"),))] == 3
    latencies = [s.value for s in metric_samples(RECORD, [3.0, 40.0]) if s.name == "validator_latency_ms"]
    assert latencies == [3.0, 40.0]


def test_nan_and_missing_keys_record_nothing():
    got = by_name(metric_samples(RECORD))
    assert ("reward_mean", (("domain", "grippers"),)) not in got  # NaN: the gauge keeps its last value
    assert not any(name == "validator_latency_ms" for name, _ in got)
    assert metric_samples({"step": 1}) == [MetricSample("step", 1.0)]
    # no labels -> nothing scored; no reward time -> no rate
    assert "plans_scored_per_second" not in {s.name for s in metric_samples({"labels": {"empty_plan": 2}})}


def test_every_sample_names_a_declared_metric_with_its_tags():
    for sample in metric_samples(RECORD, [1.0]):
        _, tag_keys, _ = METRICS[sample.name]
        assert tuple(k for k, _ in sample.tags) == tuple(sorted(tag_keys))


def test_prometheus_names():
    assert prometheus_name("reward_mean") == "ray_pddl_grpo_reward_mean"
    assert prometheus_name("plans_scored") == "ray_pddl_grpo_plans_scored_total"
