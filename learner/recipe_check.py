"""Checks a run config against a cluster before anything starts: batch divisibility, GPU/CPU counts, vLLM on GPU.

    python -m learner.recipe_check configs/qwen3-14b-2gpu.yaml --gpus 2 --cpus 16 --resource reward_node=8
    python -m learner.recipe_check configs/qwen2.5-7b-lora.yaml --ray     # resources of the running cluster

`check_recipe(cfg, cluster_resources)` returns one line per problem (empty = fine, exit 0; problems
exit 1); `recipe_warnings(cfg)` lines are printed as `warning:` and do not fail the check. Pure: it never
imports ray or vllm; the `--ray` flag imports ray only to read `ray.cluster_resources()`.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping

from actors.placement import PlacementOptions, learner_num_gpus, placement_options, plan_placement
from learner.config.learner import base_is_4bit
from learner.config.run import ConfigError, RunConfig, load_config

DEFAULT_NUM_DOMAINS = 5  # the five generated domains when sampler.domains is null
_EPS = 1e-9


def num_domains(cfg: RunConfig) -> int:
    return len(cfg.sampler.domains) if cfg.sampler.domains else DEFAULT_NUM_DOMAINS


def check_batch(cfg: RunConfig) -> list[str]:
    """Domain balance: every batch holds the same count per domain (a run's sampler.data_parallel_size is 1)."""
    problems = []
    b, d = cfg.sampler.batch_size, num_domains(cfg)
    if b % d:
        problems.append(f"sampler.batch_size ({b}) must be divisible by the number of domains ({d}): "
                        f"try {max(d, b - b % d)} or {b - b % d + d}")
    if cfg.rollout.num_generations < 2:
        problems.append("rollout.num_generations is 1: a group of one completion always has advantage 0")
    return problems


def check_lengths(cfg: RunConfig) -> list[str]:
    """Prompt + completion must fit the learner's sequence length."""
    need = cfg.learner.max_prompt_length + cfg.rollout.max_new_tokens
    if need > cfg.learner.max_seq_length:
        return [f"learner.max_prompt_length ({cfg.learner.max_prompt_length}) + rollout.max_new_tokens "
                f"({cfg.rollout.max_new_tokens}) = {need} exceeds learner.max_seq_length "
                f"({cfg.learner.max_seq_length})"]
    return []


def check_engine(cfg: RunConfig) -> list[str]:
    """vLLM runs only on a GPU and holds LoRA ranks up to 512."""
    ro = cfg.rollout
    problems = []
    if ro.engine == "vllm" and ro.num_gpus_per_actor <= 0:
        problems.append("rollout.engine is vllm but rollout.num_gpus_per_actor is 0: vLLM needs a GPU per engine "
                        "(set rollout.num_gpus_per_actor: 1, or rollout.engine: hf on CPU)")
    if ro.engine == "vllm" and learner_num_gpus(cfg) <= 0:
        problems.append("rollout.engine is vllm but the learner has no GPU (cluster.learner_num_gpus is 0): "
                        "it would train the model on CPU; set cluster.learner_num_gpus: 1")
    if ro.engine == "vllm" and cfg.learner.lora_rank > 512:
        problems.append(f"learner.lora_rank ({cfg.learner.lora_rank}) is above vLLM's largest max_lora_rank (512)")
    if ro.engine == "vllm" and ro.num_gpus_per_actor > 1 and not float(ro.num_gpus_per_actor).is_integer():
        problems.append(f"rollout.num_gpus_per_actor ({ro.num_gpus_per_actor}) above 1 must be a whole number "
                        "(tensor parallel over whole GPUs)")
    need = cfg.learner.max_prompt_length + ro.max_new_tokens
    if ro.engine == "vllm" and ro.max_model_len is not None and ro.max_model_len < need:
        problems.append(f"rollout.max_model_len ({ro.max_model_len}) is below learner.max_prompt_length + "
                        f"rollout.max_new_tokens ({need}): vLLM would reject the longest prompts")
    return problems + check_colocated(cfg) + check_quantization_gap(cfg)


def learner_is_4bit(cfg: RunConfig) -> bool:
    """The learner's base is NF4 (learner_config.base_is_4bit, the rule learner.policy.model loads by)."""
    return base_is_4bit(cfg.learner, cuda=learner_num_gpus(cfg) > 0)


def _quantization_gap_text(cfg: RunConfig) -> str:
    dtype = cfg.rollout.dtype if cfg.rollout.dtype != "auto" else "bf16/fp16"
    return (f"learner.load_in_4bit: the learner trains an NF4 base while the {cfg.rollout.engine} engine samples "
            f"from the {dtype} base (rollout.dtype {cfg.rollout.dtype}), so behaviour and learner logprobs differ "
            f"on every token")


def check_quantization_gap(cfg: RunConfig) -> list[str]:
    """A 4-bit learner next to a 16-bit engine with nothing correcting the gap (docs/gpu.md, 4-bit learner).

    The engines always load the base unquantised; the learner's importance weights
    w = exp(learner - behaviour) correct that gap per token and log it (is_weight/*). With
    learner.importance_sampling: off nothing does, and the policy gradient is biased without a trace.
    """
    if not learner_is_4bit(cfg) or cfg.learner.importance_sampling != "off":
        return []
    return [f"{_quantization_gap_text(cfg)}, and learner.importance_sampling is off: nothing corrects or logs it; "
            f"set learner.importance_sampling: token_truncate (the default), or learner.load_in_4bit: false"]


def recipe_warnings(cfg: RunConfig) -> list[str]:
    """Lines worth reading before a run that do not stop it."""
    warnings = []
    if learner_is_4bit(cfg) and cfg.learner.importance_sampling != "off":
        warnings.append(f"{_quantization_gap_text(cfg)}; learner.importance_sampling "
                        f"({cfg.learner.importance_sampling}, cap {cfg.learner.importance_sampling_cap:g}) corrects "
                        f"it: watch is_weight/mean (near 1; scripts/gpu_smoke.sh asserts [0.7, 1.4]) and "
                        f"is_weight/min, max")
    return warnings


def check_colocated(cfg: RunConfig) -> list[str]:
    """Colocated vLLM: the learner's weights stay on the GPU while vLLM is awake, so vLLM must leave it room.

    (The shapes colocated mode cannot run at all are config errors: learner.config.run.placement_problems.)
    """
    cl, ro = cfg.cluster, cfg.rollout
    if cl.placement != "colocated" or ro.engine != "vllm":
        return []
    if ro.gpu_memory_utilization + cl.colocated_learner_gpu_fraction > 1 + _EPS:
        return [f"rollout.gpu_memory_utilization ({ro.gpu_memory_utilization:g}) + "
                f"cluster.colocated_learner_gpu_fraction ({cl.colocated_learner_gpu_fraction:g}) exceeds 1: awake, "
                f"vLLM takes that share of the GPU's memory while the learner's model stays on the same GPU; "
                f"lower rollout.gpu_memory_utilization to {1 - cl.colocated_learner_gpu_fraction:g} or less"]
    return []


def check_resources(cfg: RunConfig, cluster_resources: Mapping[str, float],
                    options: PlacementOptions | None = None) -> list[str]:
    """What the placement plan asks for against the cluster's totals (ray.cluster_resources() shape)."""
    try:
        plan = plan_placement(cfg, options or placement_options(cfg))
    except ValueError as exc:
        return [f"placement: {exc}"]
    problems = []
    need = plan.totals()
    gpus_have = float(cluster_resources.get("GPU", 0.0))
    gpus_need = need.get("GPU", 0.0)
    if gpus_need > gpus_have + _EPS:
        parts = [f"{g.name} {g.totals().get('GPU', 0.0):g}" for g in plan.groups if g.totals().get("GPU")]
        problems.append(f"the run needs {gpus_need:g} GPUs ({', '.join(parts)}), the cluster has {gpus_have:g}")
    cpus_need = need.get("CPU", 0.0) + cfg.cluster.sampler_num_cpus
    cpus_have = float(cluster_resources.get("CPU", 0.0))
    if cpus_need > cpus_have + _EPS:
        problems.append(f"the run needs {cpus_need:g} CPUs (learner, rollout, reward, sampler), "
                        f"the cluster has {cpus_have:g}")
    for key, amount in need.items():
        if key in ("CPU", "GPU"):
            continue
        have = float(cluster_resources.get(key, 0.0))
        if amount > have + _EPS:
            problems.append(f"reward.worker_resource '{key}': {cfg.reward.num_workers} reward workers need "
                            f"{amount:g} units, the cluster has {have:g} (declare it on the reward node type "
                            f"in cluster.yaml, or set reward.worker_resource: null)")
    return problems


def check_recipe(cfg: RunConfig, cluster_resources: Mapping[str, float] | None = None,
                 options: PlacementOptions | None = None) -> list[str]:
    """Every problem of `cfg` on a cluster with `cluster_resources` (None = skip the resource checks)."""
    problems = check_batch(cfg) + check_lengths(cfg) + check_engine(cfg)
    if cluster_resources is not None:
        problems += check_resources(cfg, cluster_resources, options)
    return problems


def _parse_resources(args: argparse.Namespace) -> dict[str, float] | None:
    if args.ray:
        import ray  # lazy: only to read the running cluster

        ray.init(address=args.address or "auto", log_to_driver=False)
        try:
            return {k: float(v) for k, v in ray.cluster_resources().items()}
        finally:
            ray.shutdown()
    if args.gpus is None and args.cpus is None and not args.resource:
        return None
    cpus = float(args.cpus) if args.cpus is not None else math.inf
    out: dict[str, float] = {"GPU": float(args.gpus or 0), "CPU": cpus}
    for item in args.resource:
        name, _, value = item.partition("=")
        if not name or not value:
            raise ValueError(f"--resource takes NAME=AMOUNT, got {item!r}")
        out[name] = float(value)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m learner.recipe_check", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="YAML config (recipe)")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    parser.add_argument("--gpus", type=float, help="GPUs in the cluster (all nodes)")
    parser.add_argument("--cpus", type=float, help="CPUs in the cluster (all nodes); default unlimited")
    parser.add_argument("--resource", action="append", default=[], help="custom resource NAME=AMOUNT, repeatable")
    parser.add_argument("--ray", action="store_true", help="read the resources of a running Ray cluster")
    parser.add_argument("--address", help="Ray address for --ray (default: auto)")
    args = parser.parse_intermixed_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        resources = _parse_resources(args)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problems = check_recipe(cfg, resources)
    for line in recipe_warnings(cfg):
        print(f"{args.config}: warning: {line}")
    for line in problems:
        print(f"{args.config}: {line}")
    if not problems:
        where = "" if resources is None else f" on {resources}"
        print(f"{args.config}: ok{where}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
