"""SamplerConfig: where the data is, which domains, batch size, difficulty and curriculum."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

BUCKETS: tuple[str, str, str] = ("easy", "medium", "hard")


class PhaseConfig(BaseModel):
    """One phase of a step schedule: its bucket weights apply while progress < until."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    until: float = Field(..., gt=0, le=1, description="Phase ends when step / max_steps reaches this (fraction).")
    weights: dict[str, float] = Field(..., description="Sampling weight of each bucket easy/medium/hard (relative).")

    @model_validator(mode="after")
    def _check_weights(self) -> PhaseConfig:
        _check_bucket_weights(self.weights)
        return self


def _check_bucket_weights(weights: dict[str, float]) -> None:
    if set(weights) != set(BUCKETS):
        raise ValueError(f"bucket weights need exactly the keys {list(BUCKETS)}, got {sorted(weights)}")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"bucket weights must be >= 0 with a positive sum, got {weights}")


def default_phases() -> list[PhaseConfig]:
    """The seed's schedule: <30 %: 0.7/0.25/0.05, <70 %: 0.4/0.4/0.2, else 0.2/0.4/0.4."""
    return [
        PhaseConfig(until=0.3, weights={"easy": 0.7, "medium": 0.25, "hard": 0.05}),
        PhaseConfig(until=0.7, weights={"easy": 0.4, "medium": 0.4, "hard": 0.2}),
        PhaseConfig(until=1.0, weights={"easy": 0.2, "medium": 0.4, "hard": 0.4}),
    ]


class DifficultySpecConfig(BaseModel):
    """How one domain's problem file name becomes a difficulty score (see sampler/difficulty.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern: str = Field(..., description="Regex with named groups, matched at the start of the file's base name.")
    n: str = Field(..., description="Expression over the named groups for the goal-sized count (objects).")
    r: str = Field("1", description="Expression for robots / vehicles / agents (objects).")
    o: str = Field("0", description="Expression for other objects: rooms, locations, cells (objects).")
    score: str = Field("5*n + 3*r + 2*o", description="Score expression over n, r, o and the groups (points).")


class SamplerConfig(BaseModel):
    """Options of the curriculum sampler (DESIGN.md "Sampler semantics")."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    data_root: str = Field("./data", description="Directory with <domain>.jsonl files and the PDDL they name (path).")
    pddl_root: str | None = Field(
        None, description="Folder meta.domain_file / meta.problem_file are relative to; null = data_root (path). "
        "Nothing outside it is read.",
    )
    domains: list[str] | None = Field(None, description="Domains to train on; null = every <domain>.jsonl (names).")
    batch_size: int = Field(8, ge=1, description="Prompts per learner optimizer step, all domains together (prompts).")
    seed: int = Field(0, ge=0, description="Seed of bucket draws, pool shuffles and in-batch order (integer).")
    max_steps: int = Field(1000, ge=1, description="Learner optimizer steps in the run; progress = step/max_steps.")
    data_parallel_size: int = Field(1, ge=1, description="Shards a batch splits into, each balanced (shards).")
    on_bad_record: Literal["error", "skip"] = Field(
        "error", description="A malformed JSONL line, or one whose PDDL does not parse, fails the load with "
        "file:line, or is skipped and counted.",
    )
    difficulty: Literal["seed_doc", "safety_gen_code", "formula", "plan_length"] = Field(
        "seed_doc", description="Score preset over the file name's parameters: seed_doc = 5n + 3r + 2o (formula is "
        "its old name), safety_gen_code = the seed trainer's per-domain products; or meta.reference_plan_length.",
    )
    check_pddl: Literal["all", "domains", "off"] = Field(
        "all", description="Parse at load every referenced domain and problem file once, only domain files, or none.",
    )
    on_unparsed_name: Literal["error", "default"] = Field(
        "error", description="A problem file name the domain regex does not match: error, or params 1 with a warning."
    )
    difficulty_specs: dict[str, DifficultySpecConfig] = Field(
        default_factory=dict, description="Per-domain regex, n/r/o mapping and score; overrides the built-in five."
    )
    percentiles: tuple[float, float] = Field(
        (40.0, 80.0), description="Per-domain score percentiles that separate easy|medium|hard (percent)."
    )
    schedule: Literal["step", "adaptive", "per_domain", "fixed"] = Field(
        "step", description="Curriculum: phases by progress, success-driven, phases per domain, or constant weights."
    )
    phases: list[PhaseConfig] = Field(
        default_factory=default_phases, description="Phases of the step schedule, ordered by `until` (fractions)."
    )
    domain_phases: dict[str, list[PhaseConfig]] = Field(
        default_factory=dict, description="per_domain schedule: phases per domain; others use `phases` (fractions)."
    )
    fixed_weights: dict[str, float] = Field(
        default_factory=lambda: {"easy": 1.0, "medium": 1.0, "hard": 1.0},
        description="Bucket weights of the fixed schedule (relative).",
    )
    adaptive_window: int = Field(64, ge=1, description="Recent outcomes kept per (domain, bucket) (completions).")
    adaptive_min_outcomes: int = Field(8, ge=1, description="Outcomes a bucket needs to be judged (completions).")
    adaptive_low: float = Field(0.2, ge=0, le=1, description="Lower bound of the learnable success rate (fraction).")
    adaptive_high: float = Field(0.8, ge=0, le=1, description="Upper bound of the learnable success rate (fraction).")
    adaptive_boost: float = Field(4.0, ge=1, description="Weight multiplier of a bucket inside the bounds (factor).")
    logging_steps: int = Field(10, ge=1, description="Log the curriculum weights every this many steps (steps).")

    @model_validator(mode="after")
    def _check(self) -> SamplerConfig:
        if self.difficulty == "formula":  # the preset's old name, kept so older configs load
            object.__setattr__(self, "difficulty", "seed_doc")
        lo, hi = self.percentiles
        if not 0 <= lo <= hi <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= low <= high <= 100, got {self.percentiles}")
        if self.adaptive_low > self.adaptive_high:
            raise ValueError(f"adaptive_low ({self.adaptive_low}) must not exceed adaptive_high ({self.adaptive_high})")
        _check_bucket_weights(self.fixed_weights)
        named = [("phases", self.phases), *((f"domain_phases.{d}", p) for d, p in self.domain_phases.items())]
        for name, phases in named:
            ends = [p.until for p in phases]
            if not phases or ends != sorted(ends) or ends[-1] != 1.0:
                raise ValueError(f"{name} must be ordered by `until` and end at 1.0, got {ends}")
        return self
