"""Fault injection on a local Ray cluster (issue 19): every wait has a deadline and says what is missing.

Each test here hung forever on the code before issue 19 (Ray keeps an actor it cannot place pending, and the
reward pool gave a chunk to a worker that never started); see docs/reliability.md for the promises.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reward_service.config import RewardConfig
from reward_service.result import Completion, Label

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pddl"


@pytest.fixture(scope="module")
def ray_two_cpus():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _batch(n: int) -> tuple[list[Completion], list[dict]]:
    plan = (FIXTURES / "ferry" / "p01.valid.plan").read_text()
    meta = {"problem_file": "ferry/p01.pddl", "domain_file": "ferry/domain.pddl"}
    return [Completion(f"s{i}", plan) for i in range(n)], [{"sample_id": f"s{i}", "meta": meta} for i in range(n)]


@pytest.mark.timeout(120)
def test_a_reward_resource_no_node_has_fails_with_its_name(ray_two_cpus) -> None:
    from actors.reward import RewardPool
    from actors.scheduling import ActorsNotPlacedError

    completions, samples = _batch(4)
    config = RewardConfig(num_workers=2, validator="native", worker_resource="reward_node")
    t0 = time.monotonic()
    with RewardPool(config, str(FIXTURES), name_prefix="nores", start_timeout_s=3.0) as pool:
        with pytest.raises(ActorsNotPlacedError, match=r"needs 1 'reward_node', the cluster has 0 in all.*"
                                                       r"reward.worker_resource: null"):
            pool.score(completions, samples)
        with pytest.raises(ActorsNotPlacedError, match="reward_node"):
            pool.wait_ready(timeout_s=1.0)
    assert time.monotonic() - t0 < 60


@pytest.mark.timeout(180)
def test_more_reward_workers_than_cpus_score_everything_with_those_that_start(ray_two_cpus) -> None:
    from actors.reward import RewardPool

    completions, samples = _batch(12)
    config = RewardConfig(num_workers=3, cpus_per_worker=1, validator="native")  # 2 CPUs: one never starts
    with RewardPool(config, str(FIXTURES), name_prefix="toomany", start_timeout_s=3.0) as pool:
        scores = pool.score(completions, samples)
        by_worker = pool.stats().plans_by_worker
    assert [s.sample_id for s in scores] == [c.sample_id for c in completions]
    assert {s.label for s in scores} == {Label.SUCCESS}
    assert sum(by_worker.values()) == 12 and len(by_worker) == 2  # each scored exactly once, by the two placed


@pytest.mark.timeout(120)
def test_an_actor_asking_for_more_cpus_than_the_cluster_has_is_named(ray_two_cpus) -> None:
    ray = ray_two_cpus
    from actors.scheduling import ActorsNotPlacedError, wait_placed

    @ray.remote
    class Big:
        def ping(self) -> bool:
            return True

    big = Big.options(name="big-learner", num_cpus=3).remote()
    try:
        with pytest.raises(ActorsNotPlacedError, match=r"big-learner still wait.*the run needs 3 CPUs\..*'CPU': 2"):
            wait_placed(2.0, lambda: ["the run needs 3 CPUs"], poll_s=0.2)
    finally:
        ray.kill(big)
    wait_placed(10.0, poll_s=0.2)  # nothing pending any more: returns at once
