"""Integration fixtures: a 2-CPU local Ray cluster per test module."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cluster():
    """Start a local Ray with 2 CPUs (no dashboard, worker logs not echoed); shut it down after the module."""
    ray = pytest.importorskip("ray")  # not at module level: integration tests that need no Ray skip no Ray import
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
