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


def check_shares(batch_size: int, data_parallel_size: int, min_per_shard: int, num_domains: int | None) -> int:
    """Shard size for success domain weighting; ValueError when shards are uneven or the minimums do not fit.

    num_domains None (every file of data_root) skips the minimum check; the stream repeats it.
    """
    if batch_size % data_parallel_size:
        raise ValueError(f"batch_size ({batch_size}) must be divisible by data_parallel_size ({data_parallel_size}) "
                         "so that every data-parallel shard holds the same number of problems")
    shard = batch_size // data_parallel_size
    if num_domains is not None and min_per_shard * num_domains > shard:
        raise ValueError(f"domain_min_per_shard ({min_per_shard}) x num_domains ({num_domains}) = "
                         f"{min_per_shard * num_domains} exceeds the shard size batch_size / data_parallel_size "
                         f"= {shard}")
    return shard


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
    replay_fraction: float = Field(
        0.0, ge=0, le=1, description="Chance that a draw of a domain whose replay buffer is non-empty replays a "
        "problem from it (probability per draw); 0 = off. With replay on, batches depend on training outcomes.",
    )
    replay_buckets: list[str] = Field(
        default_factory=lambda: ["hard"], description="Buckets whose problems may enter the replay buffer (names).",
    )
    replay_capacity: int = Field(32, ge=1, description="Problems kept in each domain's replay buffer, oldest out "
                                 "first (problems).")
    domain_weighting: Literal["balanced", "success"] = Field(
        "balanced", description="Per-shard domain counts: exactly equal (balanced), or shared by each domain's "
        "recent failure rate (success; batches are then not balanced).",
    )
    domain_min_per_shard: int = Field(
        1, ge=1, description="With domain_weighting success: draws every domain keeps in each shard (problems).",
    )

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
        unknown = sorted(set(self.replay_buckets) - set(BUCKETS))
        if unknown:
            raise ValueError(f"replay_buckets names unknown buckets {unknown}; buckets are {list(BUCKETS)}")
        if self.replay_fraction > 0 and not self.replay_buckets:
            raise ValueError("replay_fraction is above 0 but replay_buckets is empty: no problem could be replayed")
        if self.domain_weighting == "success":
            check_shares(self.batch_size, self.data_parallel_size, self.domain_min_per_shard,
                         len(self.domains) if self.domains else None)
        named = [("phases", self.phases), *((f"domain_phases.{d}", p) for d, p in self.domain_phases.items())]
        for name, phases in named:
            ends = [p.until for p in phases]
            if not phases or ends != sorted(ends) or ends[-1] != 1.0:
                raise ValueError(f"{name} must be ordered by `until` and end at 1.0, got {ends}")
        return self
