"""RunMetrics values appear on a local Ray cluster's Prometheus endpoint (the metrics agent's /metrics)."""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request

import pytest

from actors.monitoring import METRICS, RunMetrics, metrics_endpoints, prometheus_name

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORD = {
    "step": 3, "reward/mean": 0.25, "reward/ferry/mean": 0.5, "success/ferry": 0.75,
    "labels": {"success_plans": 6, "plan_format_error": 2}, "queue/reward_pending": 4, "policy_version_lag": 1,
    "rollout/tokens_per_second": 800.0, "frac_zero_std_groups": 0.5, "time/reward": 0.5, "time/rollout": 2.0,
    "time/step": 3.0, "rollout/idle_ratio": 0.25, "learner/idle_ratio": 0.6,
}
WAIT_S = 60.0  # Ray pushes worker metrics to the agent every few seconds; the agent starts after init


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def metrics_port():
    ray = pytest.importorskip("ray")
    port = free_port()
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, _metrics_export_port=port)
    yield port
    ray.shutdown()


def scrape(port: int) -> str:
    # The metrics agent serves plain Prometheus text; Ray's token authentication guards the GCS and
    # dashboard APIs, not this endpoint, so no token is sent (docs/monitoring.md).
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def sample_value(text: str, name: str, **labels: str) -> float | None:
    """Value of the first `name{...}` line whose labels include `labels`."""
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            return float(m.group(2))
    return None


def test_run_metrics_reach_the_prometheus_endpoint(metrics_port):
    run = RunMetrics("metrics-test")
    run.update(RECORD, latencies_ms=[3.0, 40.0, 700.0])
    expected = {prometheus_name(n) for n in METRICS if n != "validator_latency_ms"}
    expected.add(prometheus_name("validator_latency_ms") + "_bucket")
    deadline, text, missing = time.monotonic() + WAIT_S, "", expected
    while time.monotonic() < deadline:
        try:
            text = scrape(metrics_port)
        except (urllib.error.URLError, ConnectionError):
            text = ""  # the agent is still starting
        missing = {n for n in expected if sample_value(text, n, run="metrics-test") is None}
        if not missing:
            break
        time.sleep(1.0)
    assert not missing, f"not exported after {WAIT_S:.0f} s: {sorted(missing)}"
    assert sample_value(text, "ray_pddl_grpo_reward_mean", run="metrics-test", domain="ferry") == 0.5
    assert sample_value(text, "ray_pddl_grpo_reward_mean", run="metrics-test", domain="all") == 0.25
    assert sample_value(text, "ray_pddl_grpo_queue_length", queue="reward_pending") == 4
    assert sample_value(text, "ray_pddl_grpo_plans_scored_total", run="metrics-test") == 8
    assert sample_value(text, "ray_pddl_grpo_validator_latency_ms_count", run="metrics-test") == 3
    assert sample_value(text, "ray_pddl_grpo_validator_latency_ms_bucket", run="metrics-test", le="50.0") == 2


def test_counter_accumulates_across_steps(metrics_port):
    run = RunMetrics("metrics-test-2")
    for step in range(3):
        run.update({"step": step, "labels": {"success_plans": 5}, "time/reward": 1.0})
    deadline, value = time.monotonic() + WAIT_S, None
    while time.monotonic() < deadline:
        value = sample_value(scrape(metrics_port), "ray_pddl_grpo_plans_scored_total", run="metrics-test-2")
        if value == 15:
            break
        time.sleep(1.0)
    assert value == 15


def test_metrics_endpoints_name_the_export_port(metrics_port):
    urls = metrics_endpoints()
    assert len(urls) == 1 and urls[0].endswith(f":{metrics_port}/metrics")
