"""Bounded work outside the reward pool (issue 19): a grounding budget, and the validate CLI's per-plan deadline.

Before: a forall over 4 variables x 65 objects ground for minutes (over 120 s in the CLI), and the CLI had no
deadline at all on plan files.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reward_service.native import NativeValidator
from reward_service.pddl.ground import GROUNDING_BUDGET
from reward_service.result import Label, Plan, PlanStep, ValidationResult
from reward_service.validate import main, validate_files

FERRY = Path(__file__).resolve().parents[2] / "fixtures" / "pddl" / "ferry"
DOMAIN = """(define (domain f) (:requirements :strips :universal-preconditions)
 (:predicates (p ?x) (q ?x ?y))
 (:action mark :parameters (?x) :precondition (not (p ?x)) :effect (p ?x)))"""


def _forall_task(tmp_path: Path, objects: int, nested: bool) -> tuple[Path, Path]:
    names = " ".join(f"o{i}" for i in range(objects))
    body = "(or (p ?a) (q ?b ?c) (p ?d))"
    goal = (f"(forall (?a) (forall (?b) (forall (?c) (forall (?d) {body}))))" if nested
            else f"(forall (?a ?b ?c ?d) {body})")
    domain, problem = tmp_path / "d.pddl", tmp_path / "p.pddl"
    domain.write_text(DOMAIN)
    problem.write_text(f"(define (problem f) (:domain f) (:objects {names}) (:init) (:goal {goal}))")
    return domain, problem


@pytest.mark.parametrize("nested", [False, True], ids=["one_forall", "nested_foralls"])
def test_a_task_too_big_to_ground_is_a_validator_error_in_seconds(tmp_path: Path, nested: bool) -> None:
    domain, problem = _forall_task(tmp_path, 65, nested)
    start = time.perf_counter()
    got = NativeValidator().validate(domain, problem, Plan((PlanStep("mark", ("o0",)),)))
    assert time.perf_counter() - start < 20
    assert got.label is Label.VALIDATOR_ERROR
    expanded = "274,625" if nested else "17,850,625"  # nested: stops at the third forall, 65**3 instances deep
    assert f"{expanded} instances" in (got.error or "") and f"grounding budget of {GROUNDING_BUDGET:,}" in got.error


def test_the_cli_says_the_task_is_too_big(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    domain, problem = _forall_task(tmp_path, 65, nested=False)
    plan = tmp_path / "x.plan"
    plan.write_text("(mark o0)\n")
    assert main([str(domain), str(problem), str(plan), "--validator", "native"]) == 2
    assert "too big to ground" in capsys.readouterr().err


def test_a_task_within_the_budget_still_grounds(tmp_path: Path) -> None:
    domain, problem = _forall_task(tmp_path, 10, nested=True)  # 10,000 instances
    got = NativeValidator().validate(domain, problem, Plan((PlanStep("mark", ("o0",)),)))
    assert got.label is Label.GOAL_NOT_SATISFIED


class _Hangs:
    """A validator stuck on its second plan (a native loop, a VAL that never returns)."""

    name = "native"

    def validate(self, domain_file, problem_file, plan: Plan) -> ValidationResult:
        if plan.steps[0].name == "sail":
            time.sleep(60)
        return ValidationResult(Label.SUCCESS, len(plan), validator=self.name)

    def validate_many(self, domain_file, problem_file, plans: list[Plan]) -> list[ValidationResult]:
        return [self.validate(domain_file, problem_file, p) for p in plans]


def test_the_cli_gives_each_plan_file_a_deadline(tmp_path: Path) -> None:
    from reward_service.config import RewardConfig

    good, slow = tmp_path / "good.plan", tmp_path / "slow.plan"
    good.write_text("(board c0 l0)\n")
    slow.write_text("(sail l0 l1)\n")
    start = time.perf_counter()
    out = validate_files(_Hangs(), str(FERRY / "domain.pddl"), str(FERRY / "p01.pddl"), [str(good), str(slow)],
                         config=RewardConfig(timeout_s=0.5))
    assert time.perf_counter() - start < 10
    assert [o.result.label for o in out] == [Label.SUCCESS, Label.VALIDATOR_ERROR]
    assert out[1].reward is None and (out[1].result.error or "").startswith("timeout: validation ran over 0.5 s")


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan", "soon"])
def test_the_cli_refuses_a_deadline_that_is_no_deadline(value: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([str(FERRY / "domain.pddl"), str(FERRY / "p01.pddl"), str(FERRY / "p01.valid.plan"), "--timeout", value])
    assert exit_.value.code == 2 and "--timeout" in capsys.readouterr().err
