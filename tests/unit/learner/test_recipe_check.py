"""check_recipe: every real-model recipe loads and fits its cluster; each kind of misfit is reported exactly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from actors.placement import PlacementOptions
from learner.config.run import config_from_dict, load_config
from learner.recipe_check import check_recipe, main

ROOT = Path(__file__).resolve().parents[3]
# Recipe -> the smallest cluster it is written for (GPU and CPU totals; cluster.yaml gives more).
RECIPES = {
    "mistral-7b-sft-lora.yaml": {"GPU": 2, "CPU": 16},
    "llama-3.1-8b-lora.yaml": {"GPU": 2, "CPU": 16},
    "qwen3-14b-2gpu.yaml": {"GPU": 2, "CPU": 16},
}
GPU_CFG = {"rollout": {"engine": "vllm", "num_gpus_per_actor": 1.0, "num_cpus_per_actor": 1.0},
           "reward": {"num_workers": 2, "cpus_per_worker": 1.0}, "sampler": {"batch_size": 10},
           "learner": {"max_seq_length": 2304},  # the defaults (1576 + 512 > 2048) would be flagged
           "cluster": {"learner_num_gpus": 1.0, "learner_num_cpus": 1.0}}


def _cfg(**sections):
    tree = {k: dict(v) for k, v in GPU_CFG.items()}
    for section, values in sections.items():
        tree.setdefault(section, {}).update(values)
    return config_from_dict(tree)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_prints_its_config_and_fits_its_cluster(name: str) -> None:
    path = ROOT / "configs" / name
    run = subprocess.run([sys.executable, "-m", "learner.main", "--config", str(path), "--print-config"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    cfg = load_config(path)
    assert cfg.sampler.batch_size % 5 == 0
    assert check_recipe(cfg, RECIPES[name]) == []
    smaller = {**RECIPES[name], "GPU": RECIPES[name]["GPU"] - 1}
    assert any("GPUs" in p for p in check_recipe(cfg, smaller))


def test_batch_must_split_evenly_over_domains_and_shards() -> None:
    assert check_recipe(_cfg(sampler={"batch_size": 12})) == [
        "sampler.batch_size (12) must be divisible by the number of domains (5): try 10 or 15"
    ]
    assert check_recipe(_cfg(sampler={"batch_size": 9, "domains": ["ferry", "grippers", "spanner"]})) == []
    with pytest.raises(ValueError, match=r"sampler.data_parallel_size \(2\) shards the TRL dataset view"):
        _cfg(sampler={"batch_size": 20, "data_parallel_size": 2})  # one data-parallel size: learner's (issue 16)


def test_vllm_engine_needs_a_gpu_and_groups_need_two_completions() -> None:
    problems = check_recipe(_cfg(rollout={"num_gpus_per_actor": 0.0}))
    assert any("rollout.engine is vllm but rollout.num_gpus_per_actor is 0" in p for p in problems)
    with pytest.raises(ValueError, match="rollout.num_generations is 1"):  # refused at load since issue 19
        _cfg(rollout={"num_generations": 1})
    cpu_run = {"rollout": {"engine": "hf", "num_gpus_per_actor": 0.0}, "cluster": {"learner_num_gpus": 0.0}}
    assert check_recipe(_cfg(**cpu_run), {"CPU": 8}) == []
    no_learner_gpu = check_recipe(_cfg(cluster={"learner_num_gpus": 0.0}))
    assert no_learner_gpu == ["rollout.engine is vllm but the learner has no GPU (cluster.learner_num_gpus is 0): "
                              "it would train the model on CPU; set cluster.learner_num_gpus: 1"]


def test_sequence_length_must_hold_prompt_and_completion() -> None:
    problems = check_recipe(_cfg(learner={"max_prompt_length": 1576, "max_seq_length": 2048},
                                 rollout={"max_new_tokens": 512}))
    assert problems == ["learner.max_prompt_length (1576) + rollout.max_new_tokens (512) = 2088 exceeds "
                        "learner.max_seq_length (2048)"]


def test_gpu_cpu_and_reward_node_counts_against_the_cluster() -> None:
    cfg = _cfg(rollout={"num_actors": 3}, reward={"worker_resource": "reward_node", "num_workers": 4},
               cluster={"sampler_num_cpus": 0.5})
    problems = check_recipe(cfg, {"GPU": 2, "CPU": 4, "reward_node": 2})
    assert problems == [
        "the run needs 4 GPUs (learner 1, rollout 3), the cluster has 2",
        "the run needs 8.5 CPUs (learner, rollout, reward, sampler), the cluster has 4",
        "reward.worker_resource 'reward_node': 4 reward workers need 4 units, the cluster has 2 "
        "(declare it on the reward node type in cluster.yaml, or set reward.worker_resource: null)",
    ]
    assert check_recipe(cfg, {"GPU": 4, "CPU": 9, "reward_node": 4}) == []


def test_colocated_mode_shares_gpus_and_pairs_engines_with_learner_gpus() -> None:
    colocated = PlacementOptions(mode="colocated")
    cfg = _cfg(rollout={"num_gpus_per_actor": 0.5})
    assert check_recipe(cfg, {"GPU": 1, "CPU": 8}, colocated) == []  # one GPU holds both
    assert check_recipe(cfg, {"GPU": 1, "CPU": 8}) == ["the run needs 1.5 GPUs (learner 1, rollout 0.5), the "
                                                       "cluster has 1"]
    two = check_recipe(_cfg(rollout={"num_actors": 2}), {"GPU": 8, "CPU": 32}, colocated)
    assert two == ["placement: colocated placement pairs one rollout engine with each learner GPU: "
                   "rollout.num_actors (2) must equal the learner's GPUs (1)"]


def test_cli_exit_codes_and_messages(capsys) -> None:
    recipe = str(ROOT / "configs" / "qwen3-14b-2gpu.yaml")
    assert main([recipe, "--gpus", "2", "--cpus", "16"]) == 0
    assert "ok on" in capsys.readouterr().out
    assert main([recipe, "--gpus", "1", "sampler.batch_size=12"]) == 1
    out = capsys.readouterr().out
    assert "sampler.batch_size (12) must be divisible" in out and "the cluster has 1" in out
    assert main([recipe, "--resource", "reward_node"]) == 2
    assert "--resource takes NAME=AMOUNT" in capsys.readouterr().err


def _cluster_yaml() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_passes_the_ray_launchers_own_validation() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = _cluster_yaml()
    validate_config(prepare_config(config))  # the schema and checks `ray up` applies, offline
    assert config["provider"]["type"] == "aws"
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert "GPU" not in head["resources"]
    gpu = [t for t in types.values() if t["resources"].get("GPU", 0) > 0]
    reward = [t for t in types.values() if t["resources"].get("reward_node", 0) > 0]
    assert gpu and reward and all("GPU" not in t["resources"] for t in reward)
    assert all(any('pip install -e ".[gpu]"' in c for c in t["worker_setup_commands"]) for t in gpu)
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert sum("RAY_AUTH_MODE=token" in c for c in starts) == 2
    assert "--dashboard-host=127.0.0.1" in " ".join(config["head_start_ray_commands"])
    assert "~/.ray/auth_token" in config["file_mounts"]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_gpu_recipe_fits_the_cluster_yaml_at_max_workers(name: str) -> None:
    config = _cluster_yaml()
    totals: dict[str, float] = {}
    types = config["available_node_types"]
    for type_name, node_type in types.items():
        count = 1 if type_name == config["head_node_type"] else node_type["max_workers"]
        for key, value in node_type["resources"].items():
            totals[key] = totals.get(key, 0.0) + count * value
    cfg = load_config(ROOT / "configs" / name, ["reward.worker_resource=reward_node"])
    problems = [p for p in check_recipe(cfg, totals) if "GPU" in p or "CPU" in p or "reward_node" in p]
    assert problems == []


def test_rollout_and_learner_cut_prompts_at_one_limit(capsys) -> None:
    recipe = str(ROOT / "configs" / "qwen3-14b-2gpu.yaml")  # leaves rollout.max_prompt_tokens unset
    cfg = load_config(recipe)
    assert cfg.rollout.max_prompt_tokens == cfg.learner.max_prompt_length == 1576
    assert load_config(recipe, ["learner.max_prompt_length=1024"]).rollout.max_prompt_tokens == 1024
    assert load_config(recipe, ["rollout.max_prompt_tokens=1576"]).rollout.max_prompt_tokens == 1576
    assert main([recipe, "--gpus", "2", "rollout.max_prompt_tokens=2048"]) == 2  # an error, not a warning
    err = capsys.readouterr().err
    assert "rollout.max_prompt_tokens (2048) must equal learner.max_prompt_length (1576)" in err


# --- issue 15, finding 7: a 4-bit NF4 learner next to a 16-bit engine ------------------------------------------

def test_4bit_learner_next_to_a_16bit_engine_is_a_warning_while_importance_weights_correct_it() -> None:
    from learner.recipe_check import recipe_warnings

    cfg = _cfg(learner={"load_in_4bit": True}, rollout={"dtype": "bfloat16"})
    assert check_recipe(cfg) == []
    (warning,) = recipe_warnings(cfg)
    assert warning.startswith("learner.load_in_4bit: the learner trains an NF4 base while the vllm engine samples "
                              "from the bfloat16 base")
    assert "learner.importance_sampling (token_truncate, cap 3) corrects it: watch is_weight/mean" in warning


def test_4bit_learner_without_importance_sampling_is_a_problem() -> None:
    from learner.recipe_check import recipe_warnings

    cfg = _cfg(learner={"load_in_4bit": True, "importance_sampling": "off"})
    (problem,) = check_recipe(cfg)
    assert "and learner.importance_sampling is off: nothing corrects or logs it" in problem
    assert recipe_warnings(cfg) == []


@pytest.mark.parametrize("learner, gpus, gap", [
    ({"load_in_4bit": False}, 1.0, False),                                # bf16 learner: the same base as the engine
    ({"load_in_4bit": True}, 0.0, False),                                 # 4-bit skipped without CUDA (model.py)
    ({"load_in_4bit": True, "load_in_4bit_on_cpu": True}, 0.0, True),     # forced NF4 on CPU
    ({"load_in_4bit": True}, 1.0, True),
])
def test_the_gap_exists_exactly_when_the_learner_loads_nf4(learner: dict, gpus: float, gap: bool) -> None:
    from learner.recipe_check import learner_is_4bit, recipe_warnings

    tree = {"learner": learner, "cluster": {"learner_num_gpus": gpus}}
    if gpus == 0:
        tree["rollout"] = {"engine": "hf"}
    cfg = config_from_dict(tree)
    assert learner_is_4bit(cfg) is gap
    assert bool(recipe_warnings(cfg)) is gap


def test_recipe_check_cli_prints_the_warning_and_exits_0(capsys: pytest.CaptureFixture) -> None:
    assert main([str(ROOT / "configs" / "qwen2.5-7b-colocated-1gpu.yaml"), "--gpus", "1", "--cpus", "16"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("corrects it: watch is_weight/mean (near 1; scripts/gpu_smoke.sh asserts [0.7, 1.4]) "
                           "and is_weight/min, max")
    assert ": warning: learner.load_in_4bit" in out[0]
    assert out[1].endswith("ok on {'GPU': 1.0, 'CPU': 16.0}")
