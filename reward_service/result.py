"""Typed results shared by every validator: labels, plan steps and the frozen ValidationResult."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class Label(str, enum.Enum):
    """VAL's verdict on a plan, as DESIGN.md "Reward semantics" names it."""

    SUCCESS = "success_plans"
    PLAN_FORMAT_ERROR = "plan_format_error"
    EMPTY_PLAN = "empty_plan"
    SAFETY_CONSTRAINTS_VIOLATION = "safety_constraints_violation"
    PRECONDITION_VIOLATION = "precondition_violation"
    GOAL_NOT_SATISFIED = "goal_not_satisfied"
    VALIDATOR_ERROR = "validator_error"


@dataclass(frozen=True)
class PlanStep:
    """One ground action of a plan: lower-cased name and arguments, and where it came from."""

    name: str
    args: tuple[str, ...]
    line: int = 0  # 1-based line in the source text (0 when unknown)

    def __str__(self) -> str:
        return "(" + " ".join((self.name, *self.args)) + ")"


@dataclass(frozen=True)
class Plan:
    """A sequential plan; `steps` empty means an empty plan."""

    steps: tuple[PlanStep, ...]

    def __len__(self) -> int:
        return len(self.steps)

    def to_text(self) -> str:
        """The plan in VAL's input format, one `(action args)` per line."""
        return "".join(f"{s}\n" for s in self.steps)


@dataclass(frozen=True)
class ValidationResult:
    """What a validator says of one plan. Frozen and picklable: it crosses Ray."""

    label: Label
    plan_length: int = 0
    # The step the seed's reward reads from VAL's text: precondition -> N of "has an unsatisfied precondition at
    # time N"; safety -> N of the last "Checking next happening (time N)" before VAL gives up, i.e. the step VAL
    # ran after the state that broke the constraint (state index + 1).
    failed_step: int | None = None
    violation_state_index: int | None = None  # safety only: the state that broke the constraint (0 = initial)
    goals_satisfied: int = 0
    goals_total: int = 0
    violated_constraint: str | None = None
    unsatisfied_preconditions: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    validator: str = ""  # "val" | "native"
    latency_ms: float = 0.0
    error: str | None = None  # reason when label is validator_error
    # success only, as VAL prints them (":action-costs", ":preferences"): "Final value" = the :metric's value
    # (e.g. total-cost), or the plan length without a metric; "Violations:" = soft preferences not held, with
    # the number of violated instances. Neither changes the label or the reward.
    metric_value: float | None = None
    preferences_violated: tuple[tuple[str, int], ...] = ()

    @property
    def valid(self) -> bool:
        return self.label is Label.SUCCESS


class Validator(Protocol):
    """One interface for the VAL binary and the native simulator."""

    name: str

    def validate(self, domain_file: str | Path, problem_file: str | Path, plan: Plan) -> ValidationResult: ...

    def validate_many(
        self, domain_file: str | Path, problem_file: str | Path, plans: list[Plan]
    ) -> list[ValidationResult]: ...


