"""Reward nodes lost and added on a local multi-node Ray cluster (issue 19 item 7; docs/cluster.md).

One `ray.cluster_utils.Cluster` per module: a head with 1 CPU and no `reward_node` (as in cluster.yaml, reward
workers never land there); each test adds raylets of 1 CPU + 1 `reward_node`, so one reward worker per node, and
they are removed after it.
A native validator that sleeps per plan makes a step long enough to change the cluster during it.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from reward_service.config import RewardConfig
from reward_service.contracts import Completion
from reward_service.result import Label

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pddl"
NODE_MEMORY = 80 * 2**20  # object store per raylet: 4 raylets fit in a few hundred MiB
FAST_NODE_DEATH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                   "health_check_failure_threshold": 3}


@pytest.fixture(scope="module")
def head():
    """A head node (1 CPU, no reward_node) with this process connected; shut down after the module."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    # Cluster writes /tmp/ray/ray_current_cluster, which a bare ray.init() elsewhere on this machine would join.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ray._private.utils, "write_ray_address", lambda *args, **kwargs: None)
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "object_store_memory": NODE_MEMORY, "include_dashboard": False,
            "_system_config": FAST_NODE_DEATH})
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture
def reward_cluster(head):
    """make(n) adds n reward nodes to the head's cluster; the test's reward nodes are removed after it."""

    def make(reward_nodes: int):
        for _ in range(reward_nodes):
            add_reward_node(head)
        return head

    try:
        yield make
    finally:
        for node in list(head.worker_nodes):
            head.remove_node(node)


def add_reward_node(cluster):
    return cluster.add_node(num_cpus=1, resources={"reward_node": 1}, object_store_memory=NODE_MEMORY)


def batch(n: int) -> tuple[list[Completion], list[dict]]:
    plan = (FIXTURES / "ferry" / "p01.valid.plan").read_text()
    meta = {"problem_file": "ferry/p01.pddl", "domain_file": "ferry/domain.pddl"}
    return [Completion(f"ferry:{i}", plan) for i in range(n)], [{"sample_id": f"ferry:{i}", "meta": meta}
                                                                for i in range(n)]


def sleepy_validator_factory(sleep_s: float, fail_on_node: str | None = None):
    """A native validator that takes `sleep_s` per plan; with fail_on_node it cannot start on that node
    (as on a node where the VAL binary or the data is missing)."""

    def factory():
        import ray

        from reward_service.native import NativeValidator

        if fail_on_node is not None and ray.get_runtime_context().get_node_id() == fail_on_node:
            raise FileNotFoundError(f"Validate binary missing on node {fail_on_node[:12]}")

        class SleepyNativeValidator(NativeValidator):
            def validate(self, domain_file, problem_file, plan):
                time.sleep(sleep_s)
                return super().validate(domain_file, problem_file, plan)

            def validate_many(self, domain_file, problem_file, plans):
                time.sleep(sleep_s * len(plans))
                return super().validate_many(domain_file, problem_file, plans)

        return SleepyNativeValidator()

    return factory


def score_in_thread(pool, completions, samples):
    out: dict = {}

    def run() -> None:
        t0 = time.monotonic()
        try:
            out["scores"] = pool.score(completions, samples)
        except Exception as exc:  # handed to the test thread, which re-raises it
            out["error"] = exc
        out["seconds"] = time.monotonic() - t0

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def wait_for(predicate, timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError(f"not reached in {timeout_s:g} s: {what}")
        time.sleep(0.02)


def node_of(cluster, actor_name: str):
    import ray

    node_id = ray.get(ray.get_actor(actor_name).ready.remote(), timeout=30)
    return next(n for n in cluster.worker_nodes if n.node_id == node_id)


def assert_each_scored_once(scores, completions, by_worker: dict[str, int], plans_scored: int) -> None:
    assert [s.sample_id for s in scores] == [c.sample_id for c in completions]
    assert len({s.sample_id for s in scores}) == len(completions)
    assert {s.label for s in scores} == {Label.SUCCESS} and all(s.reward == 1.0 for s in scores)
    assert plans_scored == len(completions) and sum(by_worker.values()) == len(completions)


@pytest.mark.timeout(90)
def test_a_reward_node_lost_mid_step_loses_and_doubles_nothing_and_the_pool_regrows(reward_cluster, caplog) -> None:
    import ray

    from actors.reward import RewardPool

    cluster = reward_cluster(2)
    completions, samples = batch(200)
    config = RewardConfig(validator="native", num_workers=2, chunk_size=1, worker_resource="reward_node")
    caplog.set_level(logging.INFO, logger="actors.reward")
    # start_timeout_s far above the step: a replacement waiting for a node must not hold the step's chunks.
    with RewardPool(config, str(FIXTURES), validator_factory=sleepy_validator_factory(0.02), name_prefix="nl",
                    start_timeout_s=40.0) as pool:
        pool.wait_ready(timeout_s=30)
        lost = node_of(cluster, "nl-1")
        thread, out = score_in_thread(pool, completions, samples)
        wait_for(lambda: pool.stats().plans_scored >= 30, 30, "30 plans scored")
        assert thread.is_alive(), "the step ended before the node loss: make it longer"
        cluster.remove_node(lost)
        thread.join(timeout=60)
        assert "error" not in out, out.get("error")
        stats = pool.stats()
        assert_each_scored_once(out["scores"], completions, stats.plans_by_worker, stats.plans_scored)
        assert out["seconds"] < 20, f"the step waited {out['seconds']:.1f} s for the lost node's replacement"
        assert stats.lost_with_node == 1 and stats.restarts == 1 and stats.validator_errors == 0
        assert stats.plans_by_worker.get("nl-1", 0) > 0 and stats.plans_by_worker["nl-0"] > 100
        assert (stats.workers, stats.workers_up, stats.workers_waiting) == (2, 1, 1)  # shrunk, replacement waits
        assert "reward pool: 1 of 2 workers up; waiting for a node: nl-1-r1" in caplog.text

        add_reward_node(cluster)  # the node comes back: Ray places the waiting replacement there
        wait_for(lambda: pool.stats().workers_up == 2, 60, "the pool back at 2 workers")
        assert "reward pool: 2 of 2 workers up" in caplog.text.split("waiting for a node: nl-1-r1", 1)[1]
        again = pool.score(completions[:40], samples[:40])
        after = pool.stats()
        assert [s.sample_id for s in again] == [c.sample_id for c in completions[:40]]
        assert after.plans_scored == 240 and after.plans_by_worker.get("nl-1-r1", 0) > 0
    assert ray.cluster_resources().get("reward_node") == 2


@pytest.mark.timeout(90)
def test_reward_nodes_added_while_scoring_grow_the_pool_to_num_workers(reward_cluster, caplog) -> None:
    from actors.reward import RewardPool

    cluster = reward_cluster(1)
    completions, samples = batch(600)
    config = RewardConfig(validator="native", num_workers=3, chunk_size=1, worker_resource="reward_node")
    caplog.set_level(logging.INFO, logger="actors.reward")
    with RewardPool(config, str(FIXTURES), validator_factory=sleepy_validator_factory(0.03), name_prefix="grow",
                    start_timeout_s=60.0) as pool:
        wait_for(lambda: pool.stats().workers_up == 1, 30, "the first worker up")
        assert pool.stats().workers_waiting == 2  # one reward node: two workers wait for nodes
        thread, out = score_in_thread(pool, completions, samples)
        wait_for(lambda: pool.stats().plans_scored >= 20, 30, "20 plans scored")
        add_reward_node(cluster)
        add_reward_node(cluster)
        wait_for(lambda: pool.stats().workers_up == 3, 40, "the pool grown to 3 workers")
        assert thread.is_alive(), "the step ended before the new workers joined: make it longer"
        thread.join(timeout=60)
        assert "error" not in out, out.get("error")
        stats = pool.stats()
    assert_each_scored_once(out["scores"], completions, stats.plans_by_worker, stats.plans_scored)
    assert set(stats.plans_by_worker) == {"grow-0", "grow-1", "grow-2"}  # the new workers took chunks mid-step
    assert all(n > 0 for n in stats.plans_by_worker.values())
    assert stats.workers_up == 3 and stats.workers_waiting == 0 and stats.restarts == 0
    assert "reward pool: 3 of 3 workers up" in caplog.text


@pytest.mark.timeout(90)
def test_a_node_where_workers_cannot_start_gets_bounded_logged_tries(reward_cluster, caplog) -> None:
    from actors.reward import MAX_START_FAILURES, RewardPool

    cluster = reward_cluster(2)
    bad = next(iter(cluster.worker_nodes)).node_id
    completions, samples = batch(60)
    config = RewardConfig(validator="native", num_workers=2, chunk_size=1, worker_resource="reward_node")
    factory = sleepy_validator_factory(0.01, fail_on_node=bad)
    with RewardPool(config, str(FIXTURES), validator_factory=factory, name_prefix="bad",
                    start_timeout_s=30.0) as pool:
        scores = pool.score(completions, samples)
        wait_for(lambda: pool.stats().workers == 1, 30, "the failing slot left empty")
        stats = pool.stats()
        assert_each_scored_once(scores, completions, stats.plans_by_worker, stats.plans_scored)
        good = next(iter(stats.plans_by_worker))
        assert list(stats.plans_by_worker) == [good] and stats.validator_errors == 0  # no plan blamed
        assert stats.failed_starts == MAX_START_FAILURES and stats.workers_up == 1
        slot = 1 - int(good.split("-")[1])
        assert f"reward pool: slot {slot} left empty until the next resize()" in caplog.text
        assert f"failed to start {MAX_START_FAILURES} times in a row, last: ActorDiedError" in caplog.text
        assert "Validate binary missing on node" in caplog.text
        time.sleep(1.0)
        assert pool.stats().failed_starts == MAX_START_FAILURES  # no more tries once given up


@pytest.mark.timeout(60)
def test_an_actor_whose_constructor_runs_is_placed_and_one_without_a_node_is_not(reward_cluster) -> None:
    import ray

    from actors.scheduling import ActorsNotPlacedError, actor_placed, wait_placed

    reward_cluster(1)

    @ray.remote(num_cpus=1, resources={"reward_node": 1})
    class SlowStart:
        def __init__(self) -> None:
            time.sleep(6)  # a model that loads for a while

        def ping(self) -> bool:
            return True

    slow = SlowStart.options(name="slow-start").remote()
    try:
        wait_for(lambda: actor_placed(slow._actor_id.hex()), 20, "slow-start placed")
        wait_placed(1.0, poll_s=0.1)  # its constructor still runs: not waiting for resources
        second = SlowStart.options(name="no-node-left").remote()  # the only reward_node is taken
        try:
            time.sleep(1.0)
            assert actor_placed(second._actor_id.hex()) is False
            with pytest.raises(ActorsNotPlacedError, match=r"no-node-left still wait"):
                wait_placed(1.0, poll_s=0.1)
        finally:
            ray.kill(second)
        assert ray.get(slow.ping.remote(), timeout=20)
    finally:
        ray.kill(slow)


@pytest.mark.timeout(60)
def test_no_worker_able_to_start_fails_the_step_with_the_cause(reward_cluster) -> None:
    from actors.reward import MAX_START_FAILURES, RewardPool

    cluster = reward_cluster(1)
    bad = next(iter(cluster.worker_nodes)).node_id
    completions, samples = batch(4)
    config = RewardConfig(validator="native", num_workers=1, worker_resource="reward_node")
    factory = sleepy_validator_factory(0.0, fail_on_node=bad)
    with RewardPool(config, str(FIXTURES), validator_factory=factory, name_prefix="none", start_timeout_s=30.0) as pool:
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match=rf"no worker left: none-0-r2 failed to start {MAX_START_FAILURES} "
                                               r"times in a row, last: .*Validate binary missing on node"):
            pool.score(completions, samples)
        assert time.monotonic() - t0 < 30  # bounded tries, not the start deadline
        assert pool.stats().failed_starts == MAX_START_FAILURES
