"""Policy loading: base model (optionally 4-bit or through Unsloth) with a PEFT LoRA adapter, and adapter sync.

The reference policy of the KL term is the same model with the adapter disabled
(`with model.disable_adapter():`), so no second copy of the weights is held.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from learner.config.learner import LearnerConfig, base_is_4bit
from learner.policy.unsloth_first import import_unsloth_first, wants_unsloth
from reward_service.contracts import LoraSpec

log = logging.getLogger(__name__)

# Unsloth does not take "all-linear"; these are the linear layers of Llama/Qwen/Mistral blocks.
_DECODER_LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def resolve_dtype(name: str, cuda: bool | None = None) -> torch.dtype:
    """'auto' -> bf16 on GPUs that support it, else fp16 on GPU, fp32 on CPU; otherwise the named dtype."""
    if name != "auto":
        if name not in _DTYPES:
            raise ValueError(f"dtype must be 'auto' or one of {sorted(_DTYPES)}, got {name!r}")
        return _DTYPES[name]
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if not cuda:
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _load_with_unsloth(config: LearnerConfig, dtype: torch.dtype) -> tuple[Any, Any]:
    from unsloth import FastLanguageModel  # lazy: GPU-only dependency

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=config.base_model,
        max_seq_length=config.max_seq_length,
        dtype=dtype,
        load_in_4bit=config.load_in_4bit,
    )
    checkpointing = "unsloth" if config.use_gradient_checkpointing else False
    if config.adapter_path is not None:
        # Unsloth's own adapter path (FastLanguageModel.from_pretrained on an adapter directory does these
        # two steps): the PEFT model, then its patch, which puts in Unsloth's LoRA kernels and gradient
        # checkpointing; PeftModel.from_pretrained alone leaves both out. The base stays learner.base_model.
        model = PeftModel.from_pretrained(model, config.adapter_path, is_trainable=True)
        model = FastLanguageModel.patch_peft_model(model, use_gradient_checkpointing=checkpointing)
        return model, tokenizer
    targets = _DECODER_LINEARS if config.lora_target_modules == "all-linear" else config.lora_target_modules
    model = FastLanguageModel.get_peft_model(
        model,
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        use_gradient_checkpointing=checkpointing,
        random_state=config.seed,
    )
    return model, tokenizer


def _load_base(config: LearnerConfig, dtype: torch.dtype, cuda: bool) -> PreTrainedModel:
    kwargs: dict[str, Any] = {"dtype": dtype}
    quantize = base_is_4bit(config, cuda)
    if quantize:
        from transformers import BitsAndBytesConfig  # needs bitsandbytes (the [gpu] extra)

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        kwargs["device_map"] = {"": torch.cuda.current_device() if cuda else "cpu"}
    elif config.load_in_4bit:
        log.info("load_in_4bit skipped: no CUDA device, loading %s in %s (load_in_4bit_on_cpu: quantise anyway)",
                 config.base_model, dtype)
    model = AutoModelForCausalLM.from_pretrained(config.base_model, **kwargs)
    if cuda and "device_map" not in kwargs:
        model = model.to("cuda")
    if quantize:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=config.use_gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    return model


def _enable_checkpointing(model: PreTrainedModel) -> None:
    # transformers 5 renamed it; the old name still works on 4.x
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def make_lora_config(spec: LoraSpec) -> LoraConfig:
    """The PEFT LoraConfig (causal LM task, no bias) of `spec`, shared by the learner and the HF rollout engine."""
    return LoraConfig(
        r=spec.rank, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=spec.peft_target_modules(),
        bias="none", task_type="CAUSAL_LM",
    )


def lora_config(config: LearnerConfig) -> LoraConfig:
    """The PEFT LoraConfig of `config` (causal LM task)."""
    return make_lora_config(config.lora_spec)


def load_policy(config: LearnerConfig) -> tuple[PeftModel, PreTrainedTokenizerBase]:
    """Base model + LoRA adapter and its tokenizer, placed on CUDA when present, in train mode."""
    if config.base_model == "tiny":
        raise ValueError(
            "base_model 'tiny' is a placeholder: build the tiny model first (learner.policy.tiny.build_tiny_model) "
            "and set base_model to its directory"
        )
    cuda = torch.cuda.is_available()
    dtype = resolve_dtype(config.dtype, cuda)
    torch.manual_seed(config.seed)  # LoRA A matrices are initialised randomly
    if wants_unsloth(config, cuda):
        import_unsloth_first(config, cuda)  # a no-op when the learner actor already did (it must come first)
        model, tokenizer = _load_with_unsloth(config, dtype)
    else:
        if config.use_unsloth and cuda:
            log.info("use_unsloth: unsloth is not installed, loading with transformers + PEFT")
        tokenizer = AutoTokenizer.from_pretrained(config.base_model)
        base = _load_base(config, dtype, cuda)
        if config.use_gradient_checkpointing:
            # non-reentrant checkpointing needs no input grads, so a frozen embedding is fine
            _enable_checkpointing(base)
        base.config.use_cache = False
        if config.adapter_path is not None:
            model = PeftModel.from_pretrained(base, config.adapter_path, is_trainable=True)
        else:
            model = get_peft_model(base, lora_config(config))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # batches need a pad id; it is always masked out
    model.train()
    return model, tokenizer


def get_adapter_state(model: PeftModel) -> dict[str, torch.Tensor]:
    """The LoRA weights only, as detached CPU tensors keyed like PEFT's saved adapter files."""
    state = get_peft_model_state_dict(model)
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def set_adapter_state(model: PeftModel, state: dict[str, torch.Tensor]) -> None:
    """Load LoRA weights from `get_adapter_state` into `model`; unknown or missing keys are an error."""
    expected = set(get_peft_model_state_dict(model))
    got = set(state)
    if got != expected:
        missing, unexpected = sorted(expected - got), sorted(got - expected)
        raise KeyError(f"adapter state does not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    result = set_peft_model_state_dict(model, state)
    unexpected_keys = getattr(result, "unexpected_keys", [])
    if unexpected_keys:
        raise KeyError(f"adapter state keys not loaded: {unexpected_keys[:3]}")


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Parameters the optimizer updates (the LoRA weights)."""
    return [p for p in model.parameters() if p.requires_grad]
