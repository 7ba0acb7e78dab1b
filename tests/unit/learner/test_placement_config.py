"""cluster.placement options: defaults, combinations rejected with their reason, options read by actors.placement."""

from __future__ import annotations

import pytest

from actors.placement import learner_actor_options, placement_options, plan_placement, rollout_group_options
from learner.config.run import ConfigError, config_from_dict
from learner.recipe_check import check_recipe

COLOCATED = {"cluster": {"placement": "colocated", "learner_num_gpus": 1.0},
             "rollout": {"num_gpus_per_actor": 1.0}}


def _cfg(base: dict, **sections):
    tree = {k: dict(v) for k, v in base.items()}
    for section, values in sections.items():
        if isinstance(values, dict):
            tree.setdefault(section, {}).update(values)
        else:
            tree[section] = values
    return config_from_dict(tree)


def test_default_is_no_placement_and_plain_actor_options() -> None:
    cfg = config_from_dict({})
    assert (cfg.cluster.placement, cfg.cluster.rollout_strategy) == ("none", "SPREAD")
    assert cfg.rollout.enable_sleep_mode is False and cfg.rollout.gpu_memory_utilization == 0.85
    assert learner_actor_options(cfg, None) == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert rollout_group_options(cfg, None) == {}
    assert placement_options(cfg).mode == "disaggregated"  # what recipe_check plans for `none`


def test_placement_options_come_from_the_cluster_section() -> None:
    cfg = _cfg(COLOCATED, cluster={"colocated_learner_gpu_fraction": 0.3, "placement_timeout_s": 12,
                                   "rollout_strategy": "PACK"})
    opt = placement_options(cfg)
    assert (opt.mode, opt.rollout_strategy, opt.colocated_learner_gpu_fraction, opt.timeout_s) == (
        "colocated", "PACK", 0.3, 12.0)
    plan = plan_placement(cfg)
    assert (plan.learner_gpus_per_actor, plan.rollout_gpus_per_actor) == (0.3, 0.7)
    assert [g.name for g in plan.groups] == ["colocated", "reward"]


def test_colocated_in_async_mode_is_rejected_with_the_reason() -> None:
    with pytest.raises(ConfigError, match=r"colocated needs mode: sync: in async mode the rollout of step t\+1 "
                                          r"runs while step t is learned"):
        _cfg(COLOCATED, mode="async")
    assert _cfg(COLOCATED, mode="sync").cluster.placement == "colocated"
    assert _cfg(COLOCATED, mode="async", cluster={"placement": "disaggregated"}).mode == "async"


@pytest.mark.parametrize(("sections", "message"), [
    ({"cluster": {"learner_num_gpus": 0.0}}, r"cluster.learner_num_gpus must be 1, got 0"),
    ({"rollout": {"num_actors": 2}}, r"rollout.num_actors must be 1, got 2"),
    ({"rollout": {"num_gpus_per_actor": 0.0}}, r"rollout.num_gpus_per_actor is 0 \(a CPU engine\)"),
    ({"rollout": {"engine": "vllm"}}, r"needs rollout.enable_sleep_mode: true"),
])
def test_colocated_shapes_that_cannot_run_are_config_errors(sections: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _cfg(COLOCATED, **sections)


def test_disaggregated_gives_each_learner_gpu_a_bundle_colocated_takes_one_gpu() -> None:
    cfg = _cfg({"cluster": {"placement": "disaggregated", "learner_num_gpus": 2.0},
                "rollout": {"num_gpus_per_actor": 1.0}})
    plan = plan_placement(cfg)
    assert plan.group("learner").bundles == ({"CPU": 1.0, "GPU": 1.0},) * 2 and plan.learner_gpus_per_actor == 1.0
    with pytest.raises(ConfigError, match=r"cluster.learner_num_gpus must be 1, got 2"):
        _cfg(COLOCATED, cluster={"learner_num_gpus": 2.0})


def test_cluster_values_are_checked_with_their_key() -> None:
    with pytest.raises(ConfigError, match=r"cluster.placement"):
        config_from_dict({"cluster": {"placement": "shared"}})
    with pytest.raises(ConfigError, match=r"cluster.colocated_learner_gpu_fraction"):
        config_from_dict({"cluster": {"colocated_learner_gpu_fraction": 1.0}})
    with pytest.raises(ConfigError, match=r"rollout.gpu_memory_utilization"):
        config_from_dict({"rollout": {"gpu_memory_utilization": 1.5}})


def test_recipe_check_flags_colocated_vllm_memory_and_a_short_context() -> None:
    vllm = {"engine": "vllm", "enable_sleep_mode": True, "gpu_memory_utilization": 0.7}
    cfg = _cfg(COLOCATED, rollout=vllm, learner={"max_seq_length": 2304}, sampler={"batch_size": 10})
    assert check_recipe(cfg, {"GPU": 1, "CPU": 8}) == [
        "rollout.gpu_memory_utilization (0.7) + cluster.colocated_learner_gpu_fraction (0.5) exceeds 1: awake, "
        "vLLM takes that share of the GPU's memory while the learner's model stays on the same GPU; lower "
        "rollout.gpu_memory_utilization to 0.5 or less"]
    fits = cfg.model_copy(update={"rollout": cfg.rollout.model_copy(update={"gpu_memory_utilization": 0.45})})
    assert check_recipe(fits, {"GPU": 1, "CPU": 8}) == []
    short = _cfg(COLOCATED, rollout={**vllm, "gpu_memory_utilization": 0.4, "max_model_len": 1024},
                 learner={"max_seq_length": 2304}, sampler={"batch_size": 10})
    assert check_recipe(short) == ["rollout.max_model_len (1024) is below learner.max_prompt_length + "
                                   "rollout.max_new_tokens (2088): vLLM would reject the longest prompts"]
