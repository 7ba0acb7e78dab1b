"""RewardConfig: validator choice, the dense-reward numbers of DESIGN.md, and the reward pool's size."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RewardConfig(BaseModel):
    """Options of the reward service (DESIGN.md "Reward semantics" and "Reliability and security")."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    validator: Literal["auto", "val", "native"] = Field(
        "auto",
        description=(
            "Which validator scores plans. auto: per task (domain + problem), decided once at pre-flight: native"
            " where the task parses with only the requirements it simulates, VAL otherwise (docs/validators.md"
            " 'Coverage'); val: the VAL binary for every task; native: the in-process simulator, a task it cannot"
            " simulate stops the run at pre-flight."
        ),
    )
    task_validators: dict[str, Literal["val", "native"]] = Field(
        default_factory=dict,
        exclude=True,
        description=(
            "Set by the pre-flight under validator: auto (not a setting): 'domain_file :: problem_file' (relative"
            " to the PDDL root, reward_service.validators.task_key) -> the validator of that task. A task not"
            " listed is decided by the reward worker on first use, by the same rule."
        ),
    )
    num_workers: int = Field(2, ge=1, description="Reward actors in the pool (actors).")

    # Dense reward: DESIGN.md's table, every number here with its default exactly as there.
    format_error_reward: float = Field(-1.0, ge=-1, le=1, description="Reward of plan_format_error (reward units).")
    empty_plan_reward: float = Field(-1.0, ge=-1, le=1, description="Reward of empty_plan (reward units).")
    safety_violation_base: float = Field(
        -0.9, ge=-1, le=1, description="safety_constraints_violation reward at p = 0 (reward units)."
    )
    safety_violation_progress: float = Field(
        0.3, ge=0, le=2, description="Added per unit of p = min(1, failed_step / denominator) (reward units)."
    )
    precondition_violation_base: float = Field(
        -0.6, ge=-1, le=1, description="precondition_violation reward at p = 0 (reward units)."
    )
    precondition_violation_progress: float = Field(
        0.3, ge=0, le=2, description="Added per unit of p = min(1, failed_step / denominator) (reward units)."
    )
    progress_denominator: Literal["plan_size", "reference_length"] = Field(
        "plan_size",
        description=(
            "Denominator of p (steps). plan_size, the seed's: VAL's 'Plan size', the generated plan's own length;"
            " needs no gold plan, but a plan failing at step 2 of 2 outranks one failing at step 5 of 10."
            " reference_length: the gold length (meta.reference_plan_length, else a .soln beside the problem, else"
            " plan_size), one denominator for a whole group, so p ranks completions by the step they got to."
            " A denominator of 0 gives p = 0.5."
        ),
    )
    goal_not_satisfied_base: float = Field(
        -0.3, ge=-1, le=1, description="goal_not_satisfied reward at g = 0 (reward units)."
    )
    goal_not_satisfied_progress: float = Field(
        0.3, ge=0, le=2, description="Added per unit of g = goals satisfied / goals total (reward units)."
    )
    success_reward: float = Field(1.0, ge=-1, le=1, description="Reward of success_plans (reward units).")

    # Input limits and checks.
    max_completion_bytes: int = Field(
        64 * 1024, ge=1, description="Completions longer than this are plan_format_error unparsed (bytes, UTF-8)."
    )
    cross_check_fraction: float = Field(
        0.0, ge=0, le=1, description="Share of plans also validated by the other validator; disagreements logged."
    )
    seed: int = Field(0, description="Seed of the cross-check sampling (so a run is reproducible).")

    # Reward pool (actors/reward.py).
    timeout_s: float = Field(10.0, gt=0, description="Per-plan validation timeout; over it the reward is None (s).")
    cpus_per_worker: float = Field(1.0, gt=0, description="Ray CPUs reserved by each reward actor (CPUs).")
    worker_resource: str | None = Field(
        None, description="Custom Ray resource each reward actor needs (1 unit), e.g. reward_node; None = any node."
    )
    chunk_size: int = Field(
        64, ge=1, description="Most plans sent to a reward actor per call; fewer when a batch is small (plans)."
    )
    max_chunk_attempts: int = Field(
        2, ge=1, description="Tries of a chunk whose worker died or hung before it is split / given up (tries)."
    )
    max_none_steps: int = Field(
        3, ge=0, description="Stop the run when every validated completion of a domain scored None this many "
        "consecutive steps (steps; 0 = never stop).",
    )

    # reward_debug.log (always written by a run; make_trl_reward writes it when given a path)
    debug_plan_chars: int = Field(160, ge=0, description="Plan text kept per line of reward_debug.log (characters).")

    @model_validator(mode="after")
    def _rewards_stay_in_range(self) -> RewardConfig:
        # Score.reward is promised in [-1, 1]: the top of each progressive row must stay inside too.
        for base, progress in (
            ("safety_violation_base", "safety_violation_progress"),
            ("precondition_violation_base", "precondition_violation_progress"),
            ("goal_not_satisfied_base", "goal_not_satisfied_progress"),
        ):
            top = getattr(self, base) + getattr(self, progress)
            if top > 1.0 + 1e-9:
                raise ValueError(f"{base} + {progress} = {top:g} exceeds the reward range [-1, 1]")
        return self
