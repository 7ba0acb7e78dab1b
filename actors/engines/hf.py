"""HFEngine: batched transformers `generate` (KV cache, left padding) behind the RolloutEngine interface."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from peft import PeftModel, get_peft_model, set_peft_model_state_dict
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    StoppingCriteria,
    StoppingCriteriaList,
)

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
from learner.policy.model import make_lora_config, resolve_dtype
from reward_service.contracts import Completion, LoraSpec


class HFEngine(RolloutEngine):
    """Rollouts with transformers on CPU or one GPU, wrapped in the learner's LoRA shape.

    Behaviour logprobs are those of each sampled token under the RAW model distribution
    (log_softmax of the unprocessed logits, i.e. temperature 1, no top-k/top-p), because the learner
    compares them with logprobs from its own plain forward pass. Sampling itself uses
    temperature / top_k / top_p from the config (temperature 0 = greedy). Per-prompt temperatures
    (a sequence) divide each row's logits in a logits processor, which transformers runs before its
    top-k / top-p warpers, so each row is tempered before the cutoffs exactly as a scalar temperature is.

    `model` is a checkpoint path (loaded with the Auto* classes, then wrapped in a fresh LoRA of shape
    `lora` when it is given, so `update_weights` can load the learner's adapter by name) or a ready
    model (a PeftModel is used as is; `tokenizer` is then required). Text prompts go through the
    tokenizer's chat template when it has one and `use_chat_template` is on (as in VLLMEngine).
    """

    def __init__(
        self,
        model: str | Path | PreTrainedModel | PeftModel,
        rollout_config: RolloutConfig,
        *,
        tokenizer=None,
        lora: LoraSpec | None = None,
        device: str | None = None,
        use_chat_template: bool = True,
        initial_version: int = 0,
    ) -> None:
        self.config = rollout_config
        self.use_chat_template = use_chat_template
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if isinstance(model, (str, Path)):
            path = str(model)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=self._dtype())
            if tokenizer is None:
                tokenizer = AutoTokenizer.from_pretrained(path)
        elif tokenizer is None:
            raise ValueError("HFEngine needs a tokenizer when given a model object instead of a path")
        if lora is not None and not isinstance(model, PeftModel):
            model = get_peft_model(model, make_lora_config(lora))
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token before building the engine")
        eos = model.generation_config.eos_token_id if model.generation_config else None
        eos = eos if eos is not None else tokenizer.eos_token_id
        self.eos_ids: frozenset[int] = frozenset(eos if isinstance(eos, list) else [eos])
        self._version = initial_version
        self._calls = 0
        self._sleeping = False

    @property
    def version(self) -> int:
        return self._version

    @property
    def sleeping(self) -> bool:
        return self._sleeping

    def sleep(self) -> None:
        """On CUDA move the weights to CPU and free the cached blocks; on CPU only record the state."""
        if self._sleeping:
            return
        if self.device.type == "cuda":
            self.model.to("cpu")
            torch.cuda.empty_cache()
        self._sleeping = True

    def wake_up(self) -> None:
        """Move the weights back to the engine's device (no-op on CPU beyond the state)."""
        if not self._sleeping:
            return
        if self.device.type == "cuda":
            self.model.to(self.device)
        self._sleeping = False

    def generate(
        self,
        prompts: Sequence[Prompt],
        sample_ids: Sequence[str],
        num_generations: int | None = None,
        policy_version: int | None = None,
        temperature: float | Sequence[float] | None = None,
    ) -> list[Completion]:
        check_awake(self._sleeping, "generate()")
        scalar, per_prompt = split_temperature(temperature, len(prompts))
        # per-prompt temperatures: the generation config samples at 1.0 and _RowTemperature tempers each row
        g, cfg = call_config(self.config, num_generations, 1.0 if per_prompt else scalar)
        check_generate_args(prompts, sample_ids, g, policy_version, self._version)
        gen_config = self._generation_config(cfg)
        encoded = [self._encode(p) for p in prompts]
        temps = per_prompt or [None] * len(prompts)
        rows = [(sample_ids[i], ids, temps[i]) for i, ids in enumerate(encoded) for _ in range(g)]
        out: list[Completion] = []
        # The n-th call of an engine with seed s draws the same samples, without touching the caller's RNG.
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed((self.config.seed * 1_000_003 + self._calls) % (2**63))
            size = self.config.batch_size or max(1, len(rows))
            for start in range(0, len(rows), size):
                out.extend(self._generate_batch(rows[start : start + size], gen_config))
        self._calls += 1
        return out

    def update_weights(self, adapter_state: Mapping[str, torch.Tensor], version: int) -> None:
        """Copy the learner's tensors into the model by name (LoRA state as `get_peft_model_state_dict` gives).

        Without a LoRA the tensors are model parameters by their state-dict names. Unknown names, a
        LoRA tensor left out, or a shape mismatch raise instead of generating with half-loaded weights.
        """
        check_awake(self._sleeping, "update_weights()")
        check_new_version(self._version, version)
        state = dict(adapter_state)
        if isinstance(self.model, PeftModel):
            result = set_peft_model_state_dict(self.model, state)
            missing = [k for k in result.missing_keys if "lora_" in k]
        else:
            result = self.model.load_state_dict(state, strict=False)
            missing = []
        if result.unexpected_keys:
            raise ValueError(f"update_weights got unknown tensors, e.g. {sorted(result.unexpected_keys)[:3]}")
        if missing:
            raise ValueError(f"update_weights left LoRA tensors unset, e.g. {sorted(missing)[:3]}")
        self._version = version

    # -- internals -------------------------------------------------------------------------------

    def _dtype(self) -> torch.dtype:
        # the learner's rule (bf16 where the GPU has it, else fp16; fp32 on CPU), so behaviour and
        # learner logprobs come from the same precision
        return resolve_dtype(self.config.dtype, cuda=self.device.type == "cuda")

    def _encode(self, prompt: Prompt) -> list[int]:
        return encode_prompt(
            self.tokenizer, prompt, use_chat_template=self.use_chat_template,
            max_prompt_tokens=self.config.max_prompt_tokens,
        )

    def _generation_config(self, cfg: RolloutConfig) -> GenerationConfig:
        # Built from our config alone, so a checkpoint's own defaults (repetition penalty, ...) never
        # change the sampling distribution behind our back.
        sample = cfg.temperature > 0
        return GenerationConfig(
            max_new_tokens=cfg.max_new_tokens,
            do_sample=sample,
            temperature=cfg.temperature if sample else None,
            top_p=cfg.top_p if sample else None,
            top_k=cfg.top_k if sample else None,
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.tokenizer.pad_token_id,
            return_dict_in_generate=True,
            output_logits=True,
            use_cache=True,
        )

    def _generate_batch(
        self, rows: list[tuple[str, list[int], float | None]], gen_config: GenerationConfig
    ) -> list[Completion]:
        width = max(len(ids) for _, ids, _ in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for _, ids, _ in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for _, ids, _ in rows], device=self.device)
        temps = [t for _, _, t in rows]
        res = self.model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            generation_config=gen_config,
            logits_processor=None if temps[0] is None else LogitsProcessorList([_RowTemperature(temps)]),
            stopping_criteria=StoppingCriteriaList([_StopOnText(self.tokenizer, self.config.stop, width)])
            if self.config.stop
            else None,
        )
        new = res.sequences[:, width:]
        logits = torch.stack(res.logits, dim=1).float()  # (batch, steps, vocab), raw
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
        out = []
        for row, (sample_id, prompt_ids, _) in enumerate(rows):
            ids = new[row].tolist()
            n, reason = self._cut(ids)
            out.append(
                Completion(
                    sample_id=sample_id,
                    text=self._text(ids[:n]),
                    token_ids=tuple(ids[:n]),
                    logprobs=tuple(logprobs[row, :n].tolist()),
                    finish_reason=reason,
                    policy_version=self._version,
                    prompt_token_ids=tuple(prompt_ids),
                )
            )
        return out

    def _cut(self, ids: list[int]) -> tuple[int, str]:
        """How many generated tokens belong to the completion, and why it ended."""
        eos_at = next((i for i, t in enumerate(ids) if t in self.eos_ids), None)
        end = len(ids) if eos_at is None else eos_at
        stop_at = self._stop_end(ids[:end])
        if stop_at is not None:
            return stop_at, "stop"
        if eos_at is not None:
            return eos_at + 1, "stop"  # EOS kept: the learner must learn to stop
        return len(ids), "length"

    def _stop_end(self, ids: list[int]) -> int | None:
        """Fewest tokens whose text contains a stop string (binary search on prefixes), or None."""
        if not self.config.stop or not self._has_stop(ids):
            return None
        lo, hi = 1, len(ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._has_stop(ids[:mid]):
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _has_stop(self, ids: list[int]) -> bool:
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return any(s in text for s in self.config.stop)

    def _text(self, ids: list[int]) -> str:
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        cuts = [text.find(s) for s in self.config.stop if s in text]
        return text[: min(cuts)] if cuts else text  # like vLLM: the stop string is not part of the text


class _RowTemperature(LogitsProcessor):
    """Divides row i's scores by temperatures[i] (per-prompt temperatures; the generation config's is 1.0).

    transformers merges custom processors into its list before it appends the sampling warpers
    (temperature, top-k, top-p: GenerationMixin._get_logits_processor), so this runs where its own
    TemperatureLogitsWarper would, before the cutoffs. Returns a new tensor: the raw logits that the
    behaviour logprobs come from are left alone.
    """

    def __init__(self, temperatures: Sequence[float]) -> None:
        self.temperatures = torch.tensor(list(temperatures), dtype=torch.float32)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.temperatures.device != scores.device or self.temperatures.dtype != scores.dtype:
            self.temperatures = self.temperatures.to(device=scores.device, dtype=scores.dtype)  # once per generate
        return scores / self.temperatures[:, None]


class _StopOnText(StoppingCriteria):
    """Ends a row once the text of its last few generated tokens holds a stop string.

    transformers' own `stop_strings` needs tokenizers whose vocabulary it can map to bytes, and
    fails on others (the tiny word-level one); decoding a short window works with any tokenizer.
    """

    def __init__(self, tokenizer, stops: list[str], prompt_width: int) -> None:
        self.tokenizer, self.stops, self.width = tokenizer, list(stops), prompt_width
        self.window = max(len(s) for s in stops) + 8  # tokens: every token but a special one adds >= 1 char

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        tails = input_ids[:, self.width :][:, -self.window :].tolist()
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
        done = [any(s in t for s in self.stops) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
