"""SamplerActor on a local Ray cluster serves the same balanced batches as the library and resumes from its state."""

from __future__ import annotations

from collections import Counter

import pytest

from sampler.config import SamplerConfig
from sampler.stream import BalancedBatchStream
from sampler.synthetic import write_synthetic_dataset

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_actor_serves_resumes_and_observes(ray_local, tmp_path):
    from actors.sampler import SamplerActor

    write_synthetic_dataset(tmp_path, {"ferry": 30, "grippers": 30, "delivery": 30}, seed=2)
    cfg = SamplerConfig(data_root=str(tmp_path), batch_size=6, max_steps=20, seed=7, schedule="adaptive",
                        adaptive_min_outcomes=2)
    actor = SamplerActor.remote(cfg.model_dump())
    local = BalancedBatchStream.from_config(cfg)

    first = ray_local.get(actor.next_batch.remote(0))
    assert [s["sample_id"] for s in first] == [s["sample_id"] for s in local.batch(0)]
    assert Counter(s["domain"] for s in first) == {"ferry": 2, "grippers": 2, "delivery": 2}
    assert ray_local.get(actor.next_batch.remote(0)) == first  # a retried call gets the same batch

    outcomes = [{"sample_id": s["sample_id"], "domain": s["domain"], "bucket": s["bucket"],
                 "reward": 1.0, "label": "success_plans"} for s in first for _ in range(2)]
    ray_local.get(actor.observe.remote(0, outcomes))
    local.observe(outcomes)
    for step in range(1, 5):
        assert ray_local.get(actor.next_batch.remote(step)) == local.batch(step)
    metrics = ray_local.get(actor.metrics.remote())
    assert metrics["sampler/observed_outcomes"] == len(outcomes)
    assert metrics["sampler/domain/ferry"] == 2

    # a fresh actor restored from the state continues the identical stream
    state = ray_local.get(actor.state_dict.remote())
    restored = SamplerActor.remote(cfg)
    ray_local.get(restored.load_state_dict.remote(state))
    for step in range(5, 9):
        assert ray_local.get(restored.next_batch.remote(step)) == ray_local.get(actor.next_batch.remote(step))
    info = ray_local.get(restored.info.remote())
    assert info["domains"] == ["delivery", "ferry", "grippers"] and info["samples"]["ferry"] == 30
