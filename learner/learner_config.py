"""LearnerConfig: model, LoRA, optimizer and GRPO loss options of the learner."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LearnerConfig(BaseModel):
    """Options of the GRPO learner (DESIGN.md "Learner semantics")."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    base_model: str = Field("tiny", description="Local path or hub name of the base model; 'tiny' builds one locally (name).")
    learning_rate: float = Field(1e-5, gt=0, description="AdamW peak learning rate (1/step).")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-batches summed into one optimizer step (count).")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm (L2).")
    beta: float = Field(0.02, ge=0, description="KL coefficient against the adapter-disabled base model (unitless).")
    load_in_4bit: bool = Field(True, description="Load the base model in 4-bit (bitsandbytes, GPU only).")
    use_gradient_checkpointing: bool = Field(True, description="Trade compute for memory in the backward pass.")
    max_prompt_length: int = Field(1576, ge=1, description="Prompts longer than this are truncated from the left (tokens).")
