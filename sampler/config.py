"""SamplerConfig: where the data is, which domains, batch size and curriculum."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SamplerConfig(BaseModel):
    """Options of the curriculum sampler (DESIGN.md "Sampler semantics")."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    data_root: str = Field("./data", description="Directory with <domain>.jsonl files and the PDDL they name (path).")
    domains: list[str] | None = Field(None, description="Domains to train on; null = every <domain>.jsonl found (names).")
    batch_size: int = Field(8, ge=1, description="Prompts per learner optimizer step, all domains together (prompts).")
