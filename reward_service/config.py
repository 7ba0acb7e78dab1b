"""RewardConfig: validator choice, the dense-reward numbers of DESIGN.md, and the reward pool's size."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RewardConfig(BaseModel):
    """Options of the reward service (DESIGN.md "Reward semantics")."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    validator: Literal["val", "native"] = Field("val", description="Which validator scores plans (val = the VAL binary).")
    num_workers: int = Field(2, ge=1, description="Reward actors in the pool (actors).")
