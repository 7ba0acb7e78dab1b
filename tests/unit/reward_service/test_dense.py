"""The seed's dense reward table, its boundaries, both progress denominators, and every source of the
reference plan length."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from reward_service.config import RewardConfig
from reward_service.dense import count_plan_actions, progress, reference_length, reward_for
from reward_service.result import Label, ValidationResult

CFG = RewardConfig()  # progress_denominator: plan_size, the seed's
CFG_REF = RewardConfig(progress_denominator="reference_length")


def result(label: Label, **kw) -> ValidationResult:
    return ValidationResult(label=label, **kw)


def test_defaults_are_the_design_table() -> None:
    assert (CFG.format_error_reward, CFG.empty_plan_reward, CFG.success_reward) == (-1.0, -1.0, 1.0)
    assert (CFG.safety_violation_base, CFG.safety_violation_progress) == (-0.9, 0.3)
    assert (CFG.precondition_violation_base, CFG.precondition_violation_progress) == (-0.6, 0.3)
    assert (CFG.goal_not_satisfied_base, CFG.goal_not_satisfied_progress) == (-0.3, 0.3)
    assert CFG.max_completion_bytes == 64 * 1024 and CFG.validator == "auto"  # native where it simulates, else VAL
    assert CFG.progress_denominator == "plan_size"


@pytest.mark.parametrize(
    ("res", "expected"),
    [
        # safety: p = failed_step / plan size (VAL's "Plan size"), clipped at 1
        (result(Label.SAFETY_CONSTRAINTS_VIOLATION, plan_length=6, failed_step=0), -0.9),
        (result(Label.SAFETY_CONSTRAINTS_VIOLATION, plan_length=6, failed_step=3), -0.9 + 0.3 * 0.5),
        (result(Label.SAFETY_CONSTRAINTS_VIOLATION, plan_length=9, failed_step=4), -0.9 + 0.3 * 4 / 9),
        (result(Label.SAFETY_CONSTRAINTS_VIOLATION, plan_length=4, failed_step=9), -0.6),
        (result(Label.PRECONDITION_VIOLATION, plan_length=3, failed_step=1), -0.6 + 0.3 / 3),
        (result(Label.PRECONDITION_VIOLATION, plan_length=8, failed_step=8), -0.3),
        # plan size 0: the middle of the range
        (result(Label.SAFETY_CONSTRAINTS_VIOLATION, plan_length=0, failed_step=1), -0.9 + 0.3 * 0.5),
        (result(Label.PRECONDITION_VIOLATION, plan_length=0, failed_step=1), -0.6 + 0.3 * 0.5),
        (result(Label.GOAL_NOT_SATISFIED, plan_length=2, goals_satisfied=1, goals_total=2), -0.3 + 0.15),
        (result(Label.EMPTY_PLAN), -1.0),
    ],
)
def test_plan_size_is_the_default_denominator_and_a_gold_length_is_ignored(res, expected) -> None:
    for ref in (None, 2, 100):
        assert reward_for(res, ref, CFG) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("res", "ref", "expected"),
    [
        (result(Label.PLAN_FORMAT_ERROR, plan_length=4), 4, -1.0),
        (result(Label.EMPTY_PLAN), 4, -1.0),
        (result(Label.SUCCESS, plan_length=7, goals_satisfied=2, goals_total=2), 5, 1.0),
        # safety: p = 0, 1/2, 1, and clipped at 1
        (result(Label.SAFETY_CONSTRAINTS_VIOLATION, plan_length=6, failed_step=0), 4, -0.9),
        (result(Label.SAFETY_CONSTRAINTS_VIOLATION, plan_length=6, failed_step=2), 4, -0.9 + 0.3 * 0.5),
        (result(Label.SAFETY_CONSTRAINTS_VIOLATION, plan_length=6, failed_step=4), 4, -0.6),
        (result(Label.SAFETY_CONSTRAINTS_VIOLATION, plan_length=9, failed_step=9), 4, -0.6),
        # precondition: p = 0, 1/4, 1, clipped
        (result(Label.PRECONDITION_VIOLATION, plan_length=3, failed_step=0), 4, -0.6),
        (result(Label.PRECONDITION_VIOLATION, plan_length=3, failed_step=1), 4, -0.6 + 0.3 * 0.25),
        (result(Label.PRECONDITION_VIOLATION, plan_length=3, failed_step=4), 4, -0.3),
        (result(Label.PRECONDITION_VIOLATION, plan_length=8, failed_step=8), 4, -0.3),
        # goals: g = 0, 1/3, 1
        (result(Label.GOAL_NOT_SATISFIED, plan_length=2, goals_satisfied=0, goals_total=3), 4, -0.3),
        (result(Label.GOAL_NOT_SATISFIED, plan_length=2, goals_satisfied=1, goals_total=3), 4, -0.3 + 0.1),
        (result(Label.GOAL_NOT_SATISFIED, plan_length=2, goals_satisfied=3, goals_total=3), 4, 0.0),
    ],
)
def test_every_row_of_the_table_against_a_reference_length(res: ValidationResult, ref: int, expected: float) -> None:
    assert reward_for(res, ref, CFG_REF) == pytest.approx(expected)


@pytest.mark.parametrize("error", ["VAL timed out after 10 s", "VAL died with signal 11", None])
def test_validator_error_is_none_never_a_number(error: str | None) -> None:
    assert reward_for(result(Label.VALIDATOR_ERROR, error=error), 5, CFG) is None
    assert reward_for(result(Label.VALIDATOR_ERROR, error=error), 5, CFG_REF) is None


def test_unknown_reference_uses_the_plans_own_length() -> None:
    res = result(Label.PRECONDITION_VIOLATION, plan_length=8, failed_step=2)
    assert reward_for(res, None, CFG_REF) == pytest.approx(-0.6 + 0.3 * 2 / 8)
    assert reward_for(res, 4, CFG_REF) == pytest.approx(-0.6 + 0.3 * 2 / 4)
    assert reward_for(res, 0, CFG_REF) == pytest.approx(-0.6 + 0.3 * 0.5)  # a gold length of 0: the middle


def test_safety_failure_without_a_step_counts_the_whole_plan() -> None:
    res = result(Label.SAFETY_CONSTRAINTS_VIOLATION, plan_length=3, failed_step=None)
    assert reward_for(res, 6, CFG_REF) == pytest.approx(-0.9 + 0.3 * 0.5)
    assert reward_for(res, 6, CFG) == pytest.approx(-0.6)


def test_the_issue_13_example_always_broken_by_step_3_of_9() -> None:
    """The seed reads 4 (the happening VAL ran after state 3), not the state index 3."""
    res = result(Label.SAFETY_CONSTRAINTS_VIOLATION, plan_length=9, failed_step=4, violation_state_index=3)
    assert reward_for(res, None, CFG) == pytest.approx(-0.9 + 0.3 * 4 / 9)
    assert reward_for(res, 12, CFG_REF) == pytest.approx(-0.9 + 0.3 * 4 / 12)


def test_config_rejects_an_unknown_denominator() -> None:
    with pytest.raises(ValidationError, match="plan_size"):
        RewardConfig(progress_denominator="gold")


def test_goal_counts_missing_give_g_zero() -> None:
    assert reward_for(result(Label.GOAL_NOT_SATISFIED, plan_length=2), 4, CFG) == pytest.approx(-0.3)


def test_numbers_come_from_the_config() -> None:
    cfg = RewardConfig(precondition_violation_base=-0.5, precondition_violation_progress=0.5, success_reward=0.9)
    res = result(Label.PRECONDITION_VIOLATION, plan_length=2, failed_step=1)
    assert reward_for(res, 2, cfg) == pytest.approx(-0.25)
    assert reward_for(res, 4, cfg.model_copy(update={"progress_denominator": "reference_length"})) == \
        pytest.approx(-0.5 + 0.5 / 4)
    assert reward_for(result(Label.SUCCESS), 2, cfg) == pytest.approx(0.9)


def test_config_rejects_rewards_outside_the_range_and_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="exceeds the reward range"):
        RewardConfig(goal_not_satisfied_base=0.9, goal_not_satisfied_progress=0.3)
    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs"):
        RewardConfig(reward_for_success=1.0)


def test_progress_with_a_zero_denominator_is_the_middle_of_the_range() -> None:
    assert progress(0, 0) == 0.5
    assert progress(3, 0) == 0.5
    assert progress(3, 4) == 0.75 and progress(5, 4) == 1.0
    with pytest.raises(ValueError, match="failed_step must be >= 0, got -1"):
        progress(-1, 3)
    with pytest.raises(ValueError, match="denominator must be >= 0, got -2"):
        progress(1, -2)


# -- reference length sources -------------------------------------------------------------------------


@pytest.fixture()
def data_root(tmp_path: Path) -> Path:
    (tmp_path / "ferry").mkdir()
    (tmp_path / "ferry" / "p01.pddl").write_text("(define (problem p01))\n")
    (tmp_path / "ferry" / "p02.pddl").write_text("(define (problem p02))\n")
    (tmp_path / "ferry" / "p03.pddl").write_text("(define (problem p03))\n")
    (tmp_path / "ferry" / "p01.pddl.soln").write_text("; gold\n(board c0 l0)\n(sail l0 l1)\n\n(debark c0 l1)\n")
    (tmp_path / "ferry" / "p02.soln").write_text("0: (board c0 l0) [1]\n1: (sail l0 l1) [1]\n; cost = 2\n")
    return tmp_path


def test_reference_from_meta_wins(data_root: Path) -> None:
    meta = {"problem_file": "ferry/p01.pddl", "reference_plan_length": 9}
    assert reference_length(meta, data_root) == 9


def test_reference_from_soln_beside_the_problem_both_namings(data_root: Path) -> None:
    assert reference_length({"problem_file": "ferry/p01.pddl"}, data_root) == 3  # p01.pddl.soln
    assert reference_length({"problem_file": "ferry/p02.pddl"}, data_root) == 2  # p02.soln
    assert reference_length({}, None, data_root / "ferry" / "p02.pddl") == 2  # explicit problem path


def test_reference_unknown_is_none(data_root: Path) -> None:
    assert reference_length({"problem_file": "ferry/p03.pddl"}, data_root) is None
    assert reference_length({}, data_root) is None


def test_edited_soln_is_read_again(data_root: Path) -> None:
    soln = data_root / "ferry" / "p02.soln"
    assert reference_length({"problem_file": "ferry/p02.pddl"}, data_root) == 2
    soln.write_text("(board c0 l0)\n")
    import os

    os.utime(soln, ns=(1, 10**18))  # a different mtime even on coarse clocks
    assert reference_length({"problem_file": "ferry/p02.pddl"}, data_root) == 1


@pytest.mark.parametrize("bad", [-1, "3", 2.5, True])
def test_reference_in_meta_must_be_a_non_negative_int(bad: object) -> None:
    with pytest.raises(ValueError, match="meta.reference_plan_length must be a non-negative integer"):
        reference_length({"reference_plan_length": bad})


def test_count_plan_actions_ignores_comments_and_prose() -> None:
    assert count_plan_actions("; (commented out)\n(a)\n  1: (b c)\ncost 2\n(c) ; x\n") == 3
