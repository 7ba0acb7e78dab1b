"""Placement groups on a local Ray cluster that declares 2 fake GPUs and 2 units of the reward_node resource.

Ray hands out declared GPUs like real ones (ids, CUDA_VISIBLE_DEVICES) without CUDA, so bundles,
GPU ids per actor, colocated sharing and the clear failure of an impossible request are all real here.
"""

from __future__ import annotations

import time

import pytest

from actors.placement import PlacementError, PlacementOptions, build_placement, plan_placement
from learner.config.run import config_from_dict

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_fake_gpus():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, num_gpus=2, resources={"reward_node": 2}, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _cfg(**rollout):
    return config_from_dict({
        "rollout": {"num_actors": 1, "num_gpus_per_actor": 1.0, "num_cpus_per_actor": 0.5, **rollout},
        "reward": {"num_workers": 2, "cpus_per_worker": 0.25, "worker_resource": "reward_node"},
        "cluster": {"learner_num_gpus": 1.0, "learner_num_cpus": 0.5},
    })


def _probe_class(ray):
    @ray.remote
    class GpuProbe:
        """Reports what Ray assigned to an actor scheduled into a bundle."""

        def gpu_ids(self) -> list:
            return [int(i) for i in ray.get_gpu_ids()]

        def resources(self) -> dict:
            return ray.get_runtime_context().get_assigned_resources()

    return GpuProbe


def _bundles(ray, pg) -> list[dict]:
    from ray.util.placement_group import placement_group_table

    table = placement_group_table(pg)
    return [table["bundles"][i] for i in sorted(table["bundles"])]


def test_disaggregated_groups_give_learner_and_rollout_different_gpus(ray_fake_gpus) -> None:
    ray = ray_fake_gpus
    options = PlacementOptions(learner_cpus_per_gpu=0.5, timeout_s=60)
    placement = build_placement(_cfg(), options)
    try:
        plan = placement.plan
        assert plan.totals() == {"CPU": 1.5, "GPU": 2.0, "reward_node": 2.0}
        assert _bundles(ray, placement.groups["learner"]) == [{"CPU": 0.5, "GPU": 1.0}]
        assert _bundles(ray, placement.groups["rollout"]) == [{"CPU": 0.5, "GPU": 1.0}]
        assert _bundles(ray, placement.groups["reward"]) == [{"CPU": 0.25, "reward_node": 1.0}] * 2
        probe = _probe_class(ray)
        learner = probe.options(num_cpus=0.5, num_gpus=plan.learner_gpus_per_actor,
                                scheduling_strategy=placement.learner_strategy(0)).remote()
        rollout = probe.options(num_cpus=0.5, num_gpus=plan.rollout_gpus_per_actor,
                                scheduling_strategy=placement.rollout_strategy(0)).remote()
        rewards = [probe.options(num_cpus=0.25, resources={"reward_node": 1},
                                 scheduling_strategy=placement.reward_strategy(i)).remote() for i in range(2)]
        learner_ids, rollout_ids = ray.get([learner.gpu_ids.remote(), rollout.gpu_ids.remote()])
        assert len(learner_ids) == 1 and len(rollout_ids) == 1
        assert {learner_ids[0], rollout_ids[0]} == {0, 1}
        for r in rewards:
            assert ray.get(r.gpu_ids.remote()) == []
            assert ray.get(r.resources.remote()).get("reward_node") == 1.0
        with pytest.raises(IndexError, match="placement group 'rollout' has 1 bundles, asked for bundle 1"):
            placement.rollout_strategy(1)
    finally:
        placement.remove()


def test_colocated_learner_and_engine_share_one_gpu(ray_fake_gpus) -> None:
    ray = ray_fake_gpus
    options = PlacementOptions(mode="colocated", learner_cpus_per_gpu=0.5, colocated_learner_gpu_fraction=0.4,
                               timeout_s=60)
    placement = build_placement(_cfg(num_gpus_per_actor=0.6), options)
    try:
        plan = placement.plan
        assert [g.name for g in plan.groups] == ["colocated", "reward"]
        assert _bundles(ray, placement.groups["colocated"]) == [{"CPU": 1.0, "GPU": 1.0}]
        assert (plan.learner_gpus_per_actor, plan.rollout_gpus_per_actor) == (0.4, 0.6)
        probe = _probe_class(ray)
        learner = probe.options(num_cpus=0.5, num_gpus=plan.learner_gpus_per_actor,
                                scheduling_strategy=placement.learner_strategy(0)).remote()
        engine = probe.options(num_cpus=0.5, num_gpus=plan.rollout_gpus_per_actor,
                               scheduling_strategy=placement.rollout_strategy(0)).remote()
        learner_ids, engine_ids = ray.get([learner.gpu_ids.remote(), engine.gpu_ids.remote()])
        assert learner_ids == engine_ids and len(learner_ids) == 1
    finally:
        placement.remove()


def test_impossible_request_fails_with_a_clear_message_instead_of_hanging(ray_fake_gpus) -> None:
    ray = ray_fake_gpus
    start = time.monotonic()
    with pytest.raises(PlacementError) as err:
        build_placement(_cfg(num_actors=3), PlacementOptions(learner_cpus_per_gpu=0.1, timeout_s=3))
    assert time.monotonic() - start < 30
    message = str(err.value)
    assert "not ready after 3 s" in message and "'rollout': 3 bundles" in message
    assert "'GPU': 4.0" in message and "'GPU': 2.0" in message  # needed vs what the cluster has
    deadline = time.monotonic() + 20
    while ray.available_resources().get("GPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)  # the half-placed groups were removed: every GPU is free again
    assert ray.available_resources().get("GPU") == 2


def test_plan_rejects_colocated_shapes_that_cannot_pair() -> None:
    with pytest.raises(ValueError, match=r"rollout.num_actors \(2\) must equal the learner's GPUs \(1\)"):
        plan_placement(_cfg(num_actors=2), PlacementOptions(mode="colocated"))
    cpu_only = config_from_dict({"rollout": {"engine": "hf", "num_gpus_per_actor": 0}})
    plan = plan_placement(cpu_only, PlacementOptions())
    assert plan.group("learner").bundles == ({"CPU": 1.0},) and plan.learner_gpus_per_actor == 0.0
    assert "GPU" not in plan.totals()
    with pytest.raises(ValueError, match="colocated placement needs the learner on whole GPUs"):
        plan_placement(cpu_only, PlacementOptions(mode="colocated"))


def test_plan_gives_data_parallel_learners_one_packed_gpu_bundle_each() -> None:
    cfg = config_from_dict({"rollout": {"num_gpus_per_actor": 1.0, "num_actors": 2},
                            "cluster": {"learner_num_gpus": 2.0, "learner_num_cpus": 3.0}})
    plan = plan_placement(cfg, PlacementOptions(rollout_strategy="PACK"))
    learner, rollout = plan.group("learner"), plan.group("rollout")
    assert learner.bundles == ({"CPU": 3.0, "GPU": 1.0},) * 2 and learner.strategy == "STRICT_PACK"
    assert rollout.strategy == "PACK" and plan.totals()["GPU"] == 4.0
    half = config_from_dict({"cluster": {"learner_num_gpus": 0.5}})
    assert plan_placement(half, PlacementOptions()).group("learner").bundles == ({"CPU": 1.0, "GPU": 0.5},)
    # the config itself refuses it now (one GPU per data-parallel learner rank)
    with pytest.raises(ValueError, match="above 1 must be a whole number"):
        plan_placement(config_from_dict({"cluster": {"learner_num_gpus": 1.5}}), PlacementOptions())
