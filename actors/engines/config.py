"""RolloutConfig: generation options shared by every rollout engine."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RolloutConfig(BaseModel):
    """Options of the rollout actors and their engines."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    engine: Literal["hf", "vllm"] = Field("hf", description="Generation engine: hf (transformers) or vllm (GPU).")
    num_actors: int = Field(1, ge=1, description="Rollout actors sharing a step's prompts (actors).")
    num_generations: int = Field(4, ge=1, description="Completions per prompt, the GRPO group size G (completions).")
    max_new_tokens: int = Field(512, ge=1, description="Generation budget per completion (tokens).")
    temperature: float = Field(0.8, ge=0, description="Sampling temperature (0 = greedy).")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling mass (probability).")
    top_k: int = Field(50, ge=0, description="Top-k sampling cutoff, 0 = off (tokens).")
