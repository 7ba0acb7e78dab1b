"""LearnerConfig: model, LoRA, optimizer and GRPO loss options of the learner."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reward_service.contracts import LoraSpec

LossType = Literal["grpo", "dr_grpo", "dapo", "bnpo"]
ScaleRewards = Literal["group", "batch", "none"]
ImportanceSamplingMode = Literal["off", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask"]

# The LoRA shape's defaults are LoraSpec's (reward_service/contracts.py): the learner's fields below and the
# rollout engines' `lora` argument take them from there, and the driver hands the engines `lora_spec`, so a
# pushed adapter always fits the one the engines built and is scaled alike (alpha / r).
_LORA = LoraSpec()


class LearnerConfig(BaseModel):
    """Options of the GRPO learner (DESIGN.md "Learner semantics"); docs/learner.md explains the math."""

    # allow_inf_nan=False: a learning rate (or any float here) of inf or nan passes gt=0 checks badly and would
    # train a NaN adapter; it is refused at load, naming the key
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    # --- model -------------------------------------------------------------------------------
    base_model: str = Field(
        "tiny", description="Local path or hub name of the base model; 'tiny' builds one locally (name)."
    )
    adapter_path: str | None = Field(
        None, description="Existing PEFT LoRA adapter to continue training (e.g. an SFT adapter); null = fresh (path)."
    )
    load_in_4bit: bool = Field(
        True, description="Load the base model in 4-bit NF4 with double quantisation (bitsandbytes) on CUDA; on CPU "
        "the base loads in `dtype` unless load_in_4bit_on_cpu."
    )
    load_in_4bit_on_cpu: bool = Field(
        False, description="With load_in_4bit: quantise on CPU too (bitsandbytes >= 0.50 runs NF4 there), the same "
        "path as on a GPU; for tests of the QLoRA path without a GPU, slower than fp32 on CPU."
    )
    use_unsloth: bool = Field(True, description="Load through Unsloth's FastLanguageModel when installed and on CUDA.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="Weights dtype; auto = bf16 on GPUs that support it, else fp16 on GPU, fp32 on CPU."
    )
    use_gradient_checkpointing: bool = Field(True, description="Trade compute for memory in the backward pass.")
    max_seq_length: int = Field(2048, ge=1, description="Longest prompt + completion the model is loaded for (tokens).")
    seed: int = Field(3407, description="Seed of the LoRA initialisation and dropout (integer).")

    # --- LoRA --------------------------------------------------------------------------------
    lora_rank: int = Field(_LORA.rank, ge=1, description="LoRA rank r (dimensions).")
    lora_alpha: float = Field(
        _LORA.alpha, gt=0, description="LoRA scaling alpha; the update is scaled by alpha / r (unitless)."
    )
    lora_dropout: float = Field(
        _LORA.dropout, ge=0, lt=1, description="Dropout on the LoRA input (probability)."
    )
    lora_target_modules: list[str] | Literal["all-linear"] = Field(
        _LORA.target_modules,
        description="Module names that get LoRA, or 'all-linear' for every linear layer but the head."
    )

    # --- optimizer and schedule --------------------------------------------------------------
    learning_rate: float = Field(1e-5, gt=0, description="AdamW peak learning rate (1/step).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW decoupled weight decay (fraction per step).")
    adam_beta1: float = Field(0.9, ge=0, lt=1, description="AdamW first-moment decay (unitless).")
    adam_beta2: float = Field(0.99, ge=0, lt=1, description="AdamW second-moment decay (unitless; TRL GRPO's 0.99).")
    adam_epsilon: float = Field(1e-8, gt=0, description="AdamW denominator epsilon (unitless).")
    lr_scheduler: Literal["constant", "cosine", "linear"] = Field(
        "constant", description="Schedule after warmup; cosine and linear decay to 0 at the run's last step."
    )
    warmup_steps: int = Field(0, ge=0, description="Linear warmup from 0 to the peak learning rate (steps).")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Micro-batches summed into one optimizer step (count)."
    )
    micro_batch_size: int | None = Field(
        None, ge=1, description="Completions per forward/backward; null = split the step into "
        "gradient_accumulation_steps equal micro-batches (completions)."
    )
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm (L2).")

    # --- GRPO loss ---------------------------------------------------------------------------
    loss_type: LossType = Field(
        "dapo", description="Token aggregation: grpo (per-sequence mean), dr_grpo (/ max_completion_length), "
        "dapo (/ tokens in the step), bnpo (/ tokens in the micro-batch); TRL's default is dapo."
    )
    beta: float = Field(0.02, ge=0, description="KL coefficient against the adapter-disabled base model (unitless).")
    kl_bias_correction: bool = Field(
        True, description="Multiply the k3 KL by the policy ratio, as TRL's use_bias_correction_kl (changes gradients)."
    )
    epsilon_low: float = Field(
        0.2, ge=0, lt=1, description="Lower clip: ratios below 1 - epsilon_low are clipped (unitless)."
    )
    epsilon_high: float = Field(
        0.2, ge=0, description="Upper clip: ratios above 1 + epsilon_high are clipped; DAPO uses 0.28."
    )
    delta: float | None = Field(
        None, gt=1, description="Two-sided clipping cap on the unclipped ratio (INTELLECT-2); null = off (unitless)."
    )
    scale_rewards: ScaleRewards = Field(
        "group", description="Advantage scaling: group std, batch std, or none (Dr. GRPO)."
    )
    advantage_epsilon: float = Field(1e-4, gt=0, description="Added to the std before dividing, as TRL (reward units).")
    max_completion_length: int | None = Field(
        None, ge=1, description="dr_grpo's constant denominator; null = rollout.max_new_tokens, "
        "filled in when the driver builds the learner (LearnerGroup.from_run_config) (tokens)."
    )
    mask_truncated_completions: bool = Field(
        False, description="Leave completions cut at the token budget (finish_reason 'length') out of the loss."
    )
    temperature: float = Field(
        1.0, gt=0, description="Logits are divided by this before log-softmax. 1.0 matches the raw logprobs the "
        "rollout engines report; TRL uses the sampling temperature (set both to reproduce TRL) (unitless)."
    )

    # --- async mode: behaviour-policy importance sampling ------------------------------------
    importance_sampling: ImportanceSamplingMode = Field(
        "token_truncate", description="Correction for completions sampled by an older or different policy: "
        "w = exp(old - behaviour), truncated (capped) or masked, per token or per sequence; off = none."
    )
    importance_sampling_cap: float = Field(
        3.0, gt=0, description="Upper bound C of the importance weight: truncated to C or masked above C (ratio)."
    )
    importance_sampling_min: float | None = Field(
        None, ge=0, description="Lower bound of the importance weight (truncate/mask below); null = none (ratio)."
    )

    # --- lengths -----------------------------------------------------------------------------
    max_prompt_length: int = Field(
        1576, ge=1, description="Prompts longer than this are truncated from the left (tokens)."
    )
    compute_entropy: bool = Field(True, description="Log the mean token entropy (one extra pass over the logits).")
    logprob_chunk_tokens: int | None = Field(
        512, ge=1, description="Completion positions whose full-vocabulary logits are turned into fp32 "
        "log-softmax at once (recomputed in the backward, not kept); null = a whole row at once (tokens).",
    )
    skip_zero_advantage: bool = Field(
        True, description="Leave completions with advantage 0 out of the forward/backward when their loss and "
        "gradient are exactly 0 (beta = 0, loss type not bnpo); the normaliser still counts them, so the update "
        "is the same, only faster. Token-mean metrics (entropy, clip ratios) then cover the computed completions.",
    )

    # --- data parallel -----------------------------------------------------------------------
    data_parallel_size: int | None = Field(
        None, ge=1, description="Learner ranks that split each step's samples and all-reduce gradients; null = one "
        "per learner GPU (cluster.learner_num_gpus when above 1), else 1. On CPU (learner_num_gpus 0) any N runs N "
        "gloo ranks (ranks)."
    )

    @property
    def lora_spec(self) -> LoraSpec:
        """The adapter shape as the engines take it (RolloutGroup passes it to every engine)."""
        return LoraSpec(self.lora_rank, self.lora_alpha, self.lora_dropout, tuple(self.lora_target_modules)
                        if isinstance(self.lora_target_modules, list) else self.lora_target_modules)

    @model_validator(mode="after")
    def _check_cross_fields(self) -> LearnerConfig:
        if isinstance(self.lora_target_modules, list) and not self.lora_target_modules:
            raise ValueError("lora_target_modules must name at least one module, or be 'all-linear'")
        if self.importance_sampling_min is not None and self.importance_sampling_min >= self.importance_sampling_cap:
            raise ValueError(
                f"importance_sampling_min ({self.importance_sampling_min}) must be below "
                f"importance_sampling_cap ({self.importance_sampling_cap})"
            )
        return self


def base_is_4bit(config: LearnerConfig, cuda: bool) -> bool:
    """Whether the learner loads its base in NF4: load_in_4bit on a GPU, or forced on CPU (load_in_4bit_on_cpu).
    learner.policy.model loads by it and learner.recipe_check judges by it."""
    return config.load_in_4bit and (cuda or config.load_in_4bit_on_cpu)


def data_parallel_ranks(data_parallel_size: int | None, learner_num_gpus: float) -> int:
    """Learner ranks for `learner.data_parallel_size` and `cluster.learner_num_gpus`; inconsistent pairs raise.

    Above one GPU every rank holds one whole GPU (NCCL cannot put two ranks on one device); on CPU
    (0 GPUs) any number of gloo ranks runs; a single GPU or a fraction of one holds one rank.
    """
    if learner_num_gpus > 1:
        if not float(learner_num_gpus).is_integer():
            raise ValueError(f"cluster.learner_num_gpus: learner GPUs above 1 must be a whole number (one per "
                             f"data-parallel rank), got {learner_num_gpus:g}")
        gpus = int(learner_num_gpus)
        if data_parallel_size is not None and data_parallel_size != gpus:
            raise ValueError(f"learner.data_parallel_size ({data_parallel_size}) must equal cluster.learner_num_gpus "
                             f"({gpus}): one GPU per rank; leave it null to follow the GPUs")
        return gpus
    size = 1 if data_parallel_size is None else data_parallel_size
    if learner_num_gpus > 0 and size > 1:
        raise ValueError(f"learner.data_parallel_size ({size}) needs one GPU per rank: set cluster.learner_num_gpus "
                         f"to {size} (it is {learner_num_gpus:g}), or to 0 for gloo ranks on CPU")
    return size
