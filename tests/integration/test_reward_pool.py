"""RewardPool on a local Ray cluster: order, a worker killed mid-batch, timeouts, resizing while scoring."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from reward_service.config import RewardConfig
from reward_service.contracts import Completion
from reward_service.result import Label

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pddl"
PICKS = [("ferry", "valid"), ("ferry", "precond"), ("grippers", "goal"), ("blocksworld", "valid"), ("ferry", "safety")]
LABELS = {
    "valid": Label.SUCCESS,
    "precond": Label.PRECONDITION_VIOLATION,
    "goal": Label.GOAL_NOT_SATISFIED,
    "safety": Label.SAFETY_CONSTRAINTS_VIOLATION,
}


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def batch(n: int) -> tuple[list[Completion], list[dict], list[Label]]:
    """n completions with distinct sample_ids (so order is checkable), cycling over fixture plans."""
    completions, samples, expected = [], [], []
    for i in range(n):
        domain, tag = PICKS[i % len(PICKS)]
        sid = f"{domain}:{i}"
        completions.append(Completion(sid, (FIXTURES / domain / f"p01.{tag}.plan").read_text()))
        meta = {"problem_file": f"{domain}/p01.pddl", "domain_file": f"{domain}/domain.pddl"}
        samples.append({"sample_id": sid, "domain": domain, "meta": meta})
        expected.append(LABELS[tag])
    return completions, samples, expected


def assert_exactly_in_order(scores, completions, expected) -> None:
    assert len(scores) == len(completions)
    assert [s.sample_id for s in scores] == [c.sample_id for c in completions]
    assert [s.label for s in scores] == expected


def score_in_thread(pool, completions, samples):
    out: dict = {}

    def run() -> None:
        out["scores"] = pool.score(completions, samples)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def wait_for(predicate, timeout_s: float = 120.0) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError("condition not reached")
        time.sleep(0.01)


@pytest.mark.timeout(300)
def test_two_workers_score_200_in_order(ray_local) -> None:
    from actors.reward import RewardPool

    completions, samples, expected = batch(200)
    config = RewardConfig(validator="val", num_workers=2, cpus_per_worker=1)  # the VAL binary in every worker
    with RewardPool(config, str(FIXTURES), name_prefix="order") as pool:
        scores = pool.score(completions, samples)
        stats = pool.stats()
    assert_exactly_in_order(scores, completions, expected)
    assert all(s.validator == "val" for s in scores)
    assert stats.plans_scored == 200 and stats.restarts == 0 and stats.timeouts == 0
    assert set(stats.plans_by_worker) == {"order-0", "order-1"}
    assert sum(stats.labels_by_domain["ferry"].values()) == 120
    assert stats.labels_by_domain["grippers"] == {"goal_not_satisfied": 40}
    assert 0 < stats.latency_p50_ms <= stats.latency_p99_ms


@pytest.mark.timeout(300)
def test_killed_worker_is_restarted_and_every_score_arrives_once(ray_local) -> None:
    from actors.reward import RewardPool

    completions, samples, expected = batch(200)
    config = RewardConfig(num_workers=2, cpus_per_worker=1, chunk_size=1)  # one VAL call per plan: a long batch
    with RewardPool(config, str(FIXTURES), name_prefix="kill") as pool:
        pool.wait_ready()
        thread, out = score_in_thread(pool, completions, samples)
        wait_for(lambda: pool.stats().plans_scored >= 20)
        assert thread.is_alive(), "the batch ended before the kill: make it longer"
        ray_local.kill(ray_local.get_actor("kill-0"))
        thread.join(timeout=240)
        stats = pool.stats()
    assert_exactly_in_order(out["scores"], completions, expected)
    assert stats.restarts == 1 and stats.requeued_chunks >= 1
    assert stats.plans_scored == 200  # each index recorded once (duplicates would not count)
    assert "kill-0-r1" in stats.plans_by_worker or stats.plans_by_worker.get("kill-1", 0) > 0


def slow_validator_factory(sleep_s: float, block_alarm: bool = False):
    """A factory (pickled by value to the actors) of a native validator made deliberately slow on one plan."""

    def factory():
        from reward_service.native import NativeValidator

        class SlowOnDetourNativeValidator(NativeValidator):
            """Sleeps on plans that sail to l2; with block_alarm it also ignores SIGALRM (a hang in C code)."""

            def _nap(self, plans) -> None:
                if any(str(step) == "(sail l0 l2)" for plan in plans for step in plan.steps):
                    if block_alarm:
                        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
                    time.sleep(sleep_s)

            def validate(self, domain_file, problem_file, plan):
                self._nap([plan])
                return super().validate(domain_file, problem_file, plan)

            def validate_many(self, domain_file, problem_file, plans):
                self._nap(plans)
                return super().validate_many(domain_file, problem_file, plans)

        return SlowOnDetourNativeValidator()

    return factory


@pytest.mark.timeout(300)
def test_validation_over_its_timeout_is_none_and_counted(ray_local) -> None:
    from actors.reward import RewardPool

    completions, samples, expected = batch(10)  # ferry safety plans (i % 5 == 4) sail to l2
    config = RewardConfig(validator="native", num_workers=2, cpus_per_worker=1, timeout_s=0.3)
    with RewardPool(config, str(FIXTURES), validator_factory=slow_validator_factory(5.0), name_prefix="slow") as pool:
        scores = pool.score(completions, samples)
        stats = pool.stats()
    slow = [i for i in range(10) if i % 5 == 4]
    for i, score in enumerate(scores):
        if i in slow:
            assert score.reward is None and score.timed_out and score.label is Label.VALIDATOR_ERROR
        else:
            assert score.label is expected[i] and score.reward is not None
    assert stats.timeouts == len(slow) and stats.restarts == 0


@pytest.mark.timeout(300)
def test_hung_worker_is_killed_by_the_watchdog_and_the_plan_gets_none(ray_local) -> None:
    from actors.reward import RewardPool

    completions, samples, expected = batch(5)
    config = RewardConfig(validator="native", num_workers=1, cpus_per_worker=1, timeout_s=0.2, chunk_size=5)
    factory = slow_validator_factory(60.0, block_alarm=True)
    with RewardPool(config, str(FIXTURES), validator_factory=factory, watchdog_grace_s=1.0, name_prefix="hang") as pool:
        scores = pool.score(completions, samples)
        stats = pool.stats()
    assert [s.sample_id for s in scores] == [c.sample_id for c in completions]
    assert scores[4].reward is None and scores[4].timed_out and "watchdog" in (scores[4].error or "")
    assert [s.label for s in scores[:4]] == expected[:4]
    assert stats.timeouts == 1 and stats.restarts >= 2


@pytest.mark.timeout(300)
def test_resize_while_scoring(ray_local) -> None:
    from actors.reward import RewardPool

    completions, samples, expected = batch(300)
    config = RewardConfig(num_workers=1, cpus_per_worker=0.5, chunk_size=1)
    with RewardPool(config, str(FIXTURES), name_prefix="grow") as pool:
        pool.wait_ready()
        thread, out = score_in_thread(pool, completions, samples)
        wait_for(lambda: pool.stats().plans_scored >= 10)
        assert thread.is_alive()
        pool.resize(3)
        thread.join(timeout=240)
        assert_exactly_in_order(out["scores"], completions, expected)
        assert pool.num_workers == 3 and pool.stats().workers == 3
        assert sorted(pool.worker_names()) == ["grow-0", "grow-1", "grow-2"]

        before = pool.stats().plans_by_worker
        again = pool.score(completions[:60], samples[:60])
        assert_exactly_in_order(again, completions[:60], expected[:60])
        after = pool.stats().plans_by_worker
        assert all(after.get(name, 0) > before.get(name, 0) for name in ("grow-0", "grow-1", "grow-2"))

        thread, out = score_in_thread(pool, completions, samples)  # and shrink back while scoring
        wait_for(lambda: pool.stats().plans_scored >= 370)
        pool.resize(1)
        thread.join(timeout=240)
        assert_exactly_in_order(out["scores"], completions, expected)
        assert pool.stats().workers == 1 and pool.worker_names() == ["grow-0"]
