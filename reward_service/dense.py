"""The seed's dense reward: a ValidationResult (and, as an option, a gold plan length) to a number, or None.

DESIGN.md "Reward semantics", every number from RewardConfig:

    plan_format_error            -1.0
    empty_plan                   -1.0
    safety_constraints_violation -0.9 + 0.3 * p
    precondition_violation       -0.6 + 0.3 * p
    goal_not_satisfied           -0.3 + 0.3 * g
    success_plans                +1.0
    validator_error / timeout    None (never a number: left out of the group's advantage)

p = min(1, failed_step / denominator), g = goals_satisfied / goals_total. The denominator is
`RewardConfig.progress_denominator`: plan_size (default, the seed's: VAL's "Plan size", the generated plan's
length) or reference_length (the gold length when known, else plan_size); a denominator of 0 gives p = 0.5.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reward_service.config import RewardConfig
from reward_service.result import Label, ValidationResult

_SOLN_ACTION = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*:\s*)?\(")


def progress(failed_step: int, denominator: int) -> float:
    """p = min(1, failed_step / denominator); a denominator of 0 gives the middle of the range, 0.5 (the seed's)."""
    if failed_step < 0:
        raise ValueError(f"failed_step must be >= 0, got {failed_step}")
    if denominator < 0:
        raise ValueError(f"denominator must be >= 0, got {denominator}")
    return 0.5 if denominator == 0 else min(1.0, failed_step / denominator)


def progress_denominator(result: ValidationResult, reference_length: int | None, config: RewardConfig) -> int:
    """The denominator of p: the plan's size (VAL's "Plan size"), or the gold length when configured and known."""
    if config.progress_denominator == "reference_length" and reference_length is not None:
        return reference_length
    return result.plan_length


def reward_for(result: ValidationResult, reference_length: int | None, config: RewardConfig) -> float | None:
    """The dense reward of one validated plan; None when the validator failed (error or timeout).

    `reference_length` (the gold plan length, None when unknown) is read only with
    `progress_denominator: reference_length`. A violation without a failed step (VAL printed no happening)
    counts as failing at the last step: failed_step = plan_length.
    """
    label = result.label
    if label is Label.VALIDATOR_ERROR:
        return None
    if label is Label.SUCCESS:
        return config.success_reward
    if label is Label.PLAN_FORMAT_ERROR:
        return config.format_error_reward
    if label is Label.EMPTY_PLAN:
        return config.empty_plan_reward
    if label is Label.GOAL_NOT_SATISFIED:
        g = result.goals_satisfied / result.goals_total if result.goals_total > 0 else 0.0
        return config.goal_not_satisfied_base + config.goal_not_satisfied_progress * min(1.0, max(0.0, g))
    failed = result.failed_step if result.failed_step is not None else result.plan_length
    p = progress(failed, progress_denominator(result, reference_length, config))
    if label is Label.SAFETY_CONSTRAINTS_VIOLATION:
        return config.safety_violation_base + config.safety_violation_progress * p
    if label is Label.PRECONDITION_VIOLATION:
        return config.precondition_violation_base + config.precondition_violation_progress * p
    raise ValueError(f"no reward defined for label {label!r}")


def count_plan_actions(text: str) -> int:
    """Action lines of a plan file (`.soln`): lines starting with `(` or `N: (`; `;` comments ignored."""
    return sum(1 for line in text.splitlines() if _SOLN_ACTION.match(line.split(";", 1)[0]))


@functools.lru_cache(maxsize=4096)
def _soln_length(path: str, mtime_ns: int) -> int:
    del mtime_ns  # part of the cache key only: an edited .soln is read again
    return count_plan_actions(Path(path).read_text(encoding="utf-8", errors="replace"))


def soln_paths(problem_path: str | Path) -> tuple[Path, ...]:
    """Where a gold plan beside a problem may live: `p01.pddl.soln`, then `p01.soln`."""
    problem = Path(problem_path)
    candidates = [problem.with_name(problem.name + ".soln")]
    if problem.suffix.lower() == ".pddl":
        candidates.append(problem.with_suffix(".soln"))
    return tuple(candidates)


def reference_length(
    meta: Mapping[str, Any], data_root: str | Path | None = None, problem_path: str | Path | None = None
) -> int | None:
    """Gold plan length: `meta.reference_plan_length`, else a `.soln` beside the problem, else None.

    The problem is `problem_path` when given, else `data_root / meta["problem_file"]`. None tells
    `reward_for` to fall back to the generated plan's length.
    """
    known = meta.get("reference_plan_length")
    if known is not None:
        if isinstance(known, bool) or not isinstance(known, int) or known < 0:
            raise ValueError(f"meta.reference_plan_length must be a non-negative integer, got {known!r}")
        return known
    if problem_path is None:
        problem_file = meta.get("problem_file")
        if problem_file is None:
            return None
        problem_path = Path(data_root) / problem_file if data_root is not None else Path(problem_file)
    for candidate in soln_paths(problem_path):
        try:
            mtime = os.stat(candidate).st_mtime_ns
        except FileNotFoundError:
            continue
        return _soln_length(str(candidate), mtime)
    return None
