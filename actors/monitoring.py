"""Live run metrics on the Ray dashboard: Prometheus gauges, counters and histograms via `ray.util.metrics`.

The driver calls `RunMetrics.update(record)` with each step's metrics.jsonl record (learner.driver.loop).
Ray exports every metric as `ray_<name>` on each node's metrics agent, the Prometheus text endpoint
`http://<node>:<metrics_export_port>/metrics` (`ray.init(_metrics_export_port=...)`, or
`ray start --metrics-export-port`), which the dashboard's Grafana panels and any Prometheus scrape.
See docs/monitoring.md.

The mapping from a record to metric values (`metric_samples`) is pure, so it is tested without Ray.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

PREFIX = "pddl_grpo_"
# validator latency buckets (ms): native checks take ~1 ms, VAL ~10-100 ms, timeouts are seconds
LATENCY_BUCKETS_MS = (1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0)
PHASES = ("sample", "rollout", "reward", "learn", "weight_sync", "step")

Kind = Literal["gauge", "counter", "histogram"]

# name (without PREFIX) -> (kind, tag keys besides "run", description with unit)
METRICS: dict[str, tuple[Kind, tuple[str, ...], str]] = {
    "step": ("gauge", (), "Learner optimizer step last finished (steps)."),
    "reward_mean": ("gauge", ("domain",), "Mean reward of the step's completions; domain 'all' = whole batch "
                    "(reward in [-1, 1])."),
    "success_rate": ("gauge", ("domain",), "Share of the step's completions VAL accepted (fraction)."),
    "plans_scored": ("counter", (), "Plans scored by the reward pool since the driver started (plans)."),
    "plans_scored_per_second": ("gauge", (), "Plans scored per second of the step's reward phase (plans/s)."),
    "validator_latency_ms": ("histogram", (), "Latency of one plan validation (ms)."),
    "queue_length": ("gauge", ("queue",), "Items waiting in a queue, from the record's queue/<name> keys (items)."),
    "policy_version_lag": ("gauge", (), "Policy versions the step's rollouts lag the learner (versions)."),
    "rollout_tokens_per_second": ("gauge", (), "Completion tokens generated per second of rollout (tokens/s)."),
    "phase_seconds": ("gauge", ("phase",), "Seconds of the last step spent in each phase; phase 'step' = total (s)."),
    "frac_zero_std_groups": ("gauge", (), "Share of groups whose rewards are all equal (fraction)."),
    "idle_ratio": ("gauge", ("role",), "Share of the last step's wall time a role sat idle, measured where it "
                   "runs (rollout: the actors' own busy time; learner: its update) (fraction)."),
}


@dataclass(frozen=True)
class MetricSample:
    """One value to record: metric name (without PREFIX), value, tags besides `run`."""

    name: str
    value: float
    tags: tuple[tuple[str, str], ...] = ()


def prometheus_name(name: str) -> str:
    """The name Ray's exporter shows for a metric (counters get Prometheus' `_total` suffix)."""
    kind = METRICS[name][0]
    return f"ray_{PREFIX}{name}" + ("_total" if kind == "counter" else "")


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None  # NaN = "no data this step": keep the last value


def metric_samples(record: Mapping[str, Any], latencies_ms: Iterable[float] = ()) -> list[MetricSample]:
    """The metric values of one step record (the keys learner.driver.loop writes); missing keys give nothing."""
    out: list[MetricSample] = []

    def add(name: str, value: Any, **tags: str) -> None:
        v = _finite(value)
        if v is not None:
            out.append(MetricSample(name, v, tuple(sorted(tags.items()))))

    add("step", record.get("step"))
    add("reward_mean", record.get("reward/mean"), domain="all")
    for key, value in record.items():
        if m := re.fullmatch(r"reward/(.+)/mean", key):
            add("reward_mean", value, domain=m.group(1))
        elif key.startswith("success/"):
            add("success_rate", value, domain=key.split("/", 1)[1])
        elif key.startswith("queue/"):
            add("queue_length", value, queue=key.split("/", 1)[1])
    labels = record.get("labels")
    scored = sum(v for v in labels.values() if isinstance(v, (int, float))) if isinstance(labels, dict) else 0
    if scored:
        add("plans_scored", scored)
        reward_s = _finite(record.get("time/reward"))
        if reward_s:
            add("plans_scored_per_second", scored / reward_s)
    for latency in latencies_ms:
        add("validator_latency_ms", latency)
    add("policy_version_lag", record.get("policy_version_lag"))
    add("rollout_tokens_per_second", record.get("rollout/tokens_per_second"))
    add("frac_zero_std_groups", record.get("frac_zero_std_groups"))
    for phase in PHASES:
        add("phase_seconds", record.get(f"time/{phase}"), phase=phase)
    for role in ("rollout", "learner"):
        add("idle_ratio", record.get(f"{role}/idle_ratio"), role=role)
    return out


class RunMetrics:
    """The run's Ray metrics, tagged `run=<run_name>` so runs sharing a cluster stay apart.

    Safe in the driver and in actors; before `ray.init` Ray keeps the values locally and nothing is
    exported. Metric objects are made once here: Ray registers a name once per process.
    """

    def __init__(self, run_name: str) -> None:
        from ray.util.metrics import Counter, Gauge, Histogram  # actors/ may import ray; kept lazy for CLIs

        self.run_name = run_name
        self._metrics: dict[str, Any] = {}
        for name, (kind, tag_keys, description) in METRICS.items():
            tags = ("run", *tag_keys)
            if kind == "gauge":
                metric = Gauge(PREFIX + name, description, tag_keys=tags)
            elif kind == "counter":
                metric = Counter(PREFIX + name, description, tag_keys=tags)
            else:
                metric = Histogram(PREFIX + name, description, boundaries=list(LATENCY_BUCKETS_MS), tag_keys=tags)
            metric.set_default_tags({"run": run_name})
            self._metrics[name] = metric

    def record(self, sample: MetricSample) -> None:
        """Apply one value: set a gauge, add to a counter, observe into a histogram."""
        kind = METRICS[sample.name][0]
        metric, tags = self._metrics[sample.name], dict(sample.tags)
        if kind == "gauge":
            metric.set(sample.value, tags=tags)
        elif kind == "counter":
            metric.inc(sample.value, tags=tags)
        else:
            metric.observe(sample.value, tags=tags)

    def update(self, record: Mapping[str, Any], latencies_ms: Iterable[float] = ()) -> list[MetricSample]:
        """Record one step (`latencies_ms`: the step's Score.latency_ms values); returns what was recorded."""
        samples = metric_samples(record, latencies_ms)
        for sample in samples:
            self.record(sample)
        return samples

    def set_queue_length(self, queue: str, length: int) -> None:
        """Set one queue's length between steps (e.g. the reward pool's pending chunks)."""
        self.record(MetricSample("queue_length", float(length), (("queue", queue),)))


def metrics_endpoints() -> list[str]:
    """Prometheus text endpoints of the connected cluster's alive nodes (`ray.init` first)."""
    import ray

    return [f"http://{n['NodeManagerAddress']}:{n['MetricsExportPort']}/metrics"
            for n in ray.nodes() if n.get("Alive") and n.get("MetricsExportPort")]
