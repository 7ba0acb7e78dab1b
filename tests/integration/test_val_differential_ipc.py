"""Differential test on IPC-style forms (issue 20): native == VAL on label, failed step, goal counts and, for
valid plans, VAL's "Final value" and preference violations.

The forms: :action-costs (total-cost raised by a constant and by a static function), `either` types, a
supertype used without its own entry, a predicate with a repeated variable name, :preferences (soft goals and
soft trajectory constraints beside a hard one, metric over is-violated), and hard `exists` goals (tpp). Every
fixture plan under tests/fixtures/pddl/<form>/ plus seeded random walks over each task are judged by both.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from pathlib import Path

import pytest

from reward_service.native import NativeValidator
from reward_service.pddl import Grounder, Simulator, load_domain, load_problem
from reward_service.plan_file import parse_plan_text
from reward_service.result import Label, Plan, PlanStep, ValidationResult
from reward_service.val import ValValidator

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pddl"
IPC_FORMS = ("roads-costs", "storage-either", "tetris-supertype", "logistics-repeated", "tpp-exists",
             "prefs-logistics")
GOAL_LABELS = (Label.SUCCESS, Label.GOAL_NOT_SATISFIED, Label.EMPTY_PLAN)
SEED = 20261202


def _key(r: ValidationResult) -> tuple:
    goals = (r.goals_satisfied, r.goals_total) if r.label in GOAL_LABELS else None
    metric = (r.metric_value, r.preferences_violated) if r.label is Label.SUCCESS else None
    return r.label, r.failed_step, r.violation_state_index, goals, metric


def _ground_actions(domain_file: Path, problem_file: Path) -> list[PlanStep]:
    """Every ground action of the task (small fixtures), as plan steps."""
    domain = load_domain(domain_file)
    grounder = Grounder(domain, load_problem(problem_file, domain))
    steps = []
    for action in domain.actions:
        for args in itertools.product(*(grounder.objects_of(p.type) for p in action.params)):
            steps.append(PlanStep(action.name, tuple(args)))
    return steps


def _random_plans(domain_file: Path, problem_file: Path, rng: random.Random, n: int) -> list[Plan]:
    """Random walks over applicable actions, some with an inapplicable step or cut short."""
    sim = Simulator(load_domain(domain_file), load_problem(problem_file, load_domain(domain_file)))
    steps = _ground_actions(domain_file, problem_file)
    plans = []
    for _ in range(n):
        state, walk = sim.grounder.init, []
        for _ in range(rng.randint(0, 8)):
            ok = [s for s in steps if sim.grounder.action(sim.domain.action_index[s.name], s.args).applicable(state)]
            if not ok:
                break
            step = rng.choice(ok)
            walk.append(step)
            state = sim.grounder.action(sim.domain.action_index[step.name], step.args).apply(state)
        if walk and rng.random() < 0.3:
            walk.insert(rng.randrange(len(walk) + 1), rng.choice(steps))  # often inapplicable
        plans.append(Plan(tuple(walk)))
    return plans


@pytest.fixture(scope="module")
def validators() -> tuple[ValValidator, NativeValidator]:
    return ValValidator(timeout_s=30), NativeValidator()


@pytest.mark.parametrize("form", IPC_FORMS)
def test_fixture_plans_agree_on_ipc_forms(validators, form):
    val, native = validators
    folder = FIXTURES / form
    diffs, labels = [], Counter()
    for plan_file in sorted(folder.glob("p01.*.plan")):
        plan = parse_plan_text(plan_file.read_text(), filename=str(plan_file))
        v, n = (x.validate(folder / "domain.pddl", folder / "p01.pddl", plan) for x in (val, native))
        labels[v.label] += 1
        if _key(v) != _key(n):
            diffs.append(f"{form}/{plan_file.name}: VAL {_key(v)} native {_key(n)}")
    assert not diffs, "\n".join(diffs)
    assert labels[Label.SUCCESS] and labels[Label.GOAL_NOT_SATISFIED] and labels[Label.PRECONDITION_VIOLATION]


def test_random_walks_agree_on_ipc_forms(validators):
    val, native = validators
    rng = random.Random(SEED)
    diffs, labels = [], Counter()
    for form in IPC_FORMS:
        domain_file, problem_file = FIXTURES / form / "domain.pddl", FIXTURES / form / "p01.pddl"
        plans = _random_plans(domain_file, problem_file, rng, 40)
        for i, (plan, v) in enumerate(zip(plans, val.validate_many(domain_file, problem_file, plans), strict=True)):
            n = native.validate(domain_file, problem_file, plan)
            labels[v.label] += 1
            assert v.label is not Label.VALIDATOR_ERROR, f"{form} #{i}: {v.error}"
            if _key(v) != _key(n):
                diffs.append(f"{form} #{i} {plan.to_text()!r}: VAL {_key(v)} native {_key(n)}")
    assert not diffs, f"{len(diffs)} disagreements:\n" + "\n".join(diffs[:40])
    assert {Label.SUCCESS, Label.GOAL_NOT_SATISFIED, Label.PRECONDITION_VIOLATION, Label.EMPTY_PLAN} <= set(labels)


def test_action_costs_report_the_plan_cost_as_val_does(validators):
    folder = FIXTURES / "roads-costs"
    plan = parse_plan_text((folder / "p01.valid-honk.plan").read_text())
    for validator in validators:
        r = validator.validate(folder / "domain.pddl", folder / "p01.pddl", plan)
        assert (r.label, r.metric_value) == (Label.SUCCESS, 8.0), r  # 3 + 1 + 4: VAL's "Final value: 8"


def test_a_cost_function_without_a_value_is_no_verdict_for_both(validators, tmp_path):
    # VAL: "Attempt to access undefined numeric expression!" -> neither validator gives a verdict
    folder = FIXTURES / "roads-costs"
    problem = tmp_path / "p-undefined.pddl"
    problem.write_text((folder / "p01.pddl").read_text().replace(" (= (road-length b c) 4)", ""))
    plan = parse_plan_text((folder / "p01.valid.plan").read_text())
    for validator in validators:
        assert validator.validate(folder / "domain.pddl", problem, plan).label is Label.VALIDATOR_ERROR


def test_soft_failures_before_a_hard_one_keep_the_hard_state(validators):
    # issue 20: VAL prints "Failure to satisfy" for preferences too; the hard at-most-once breaks in state 7
    folder = FIXTURES / "prefs-logistics"
    plan = parse_plan_text((folder / "p01.safety-after-soft.plan").read_text())
    for validator in validators:
        r = validator.validate(folder / "domain.pddl", folder / "p01.pddl", plan)
        assert (r.label, r.failed_step, r.violation_state_index) == (Label.SAFETY_CONSTRAINTS_VIOLATION, 8, 7), r


def test_exists_goal_counts_once(validators):
    folder = FIXTURES / "tpp-exists"
    plan = parse_plan_text((folder / "p01.goal-exists.plan").read_text())
    for validator in validators:
        r = validator.validate(folder / "domain.pddl", folder / "p01.pddl", plan)
        assert (r.label, r.goals_satisfied, r.goals_total) == (Label.GOAL_NOT_SATISFIED, 1, 2), r


def test_at_most_once_over_exists_keeps_its_state_when_val_breaks_the_line(validators, tmp_path):
    # VAL prints "Constraint violated by satisfaction of (exists (?x ) (at ?x l1))" and " at 6" on the next line
    folder = FIXTURES / "prefs-logistics"
    problem = tmp_path / "p-amo-exists.pddl"
    problem.write_text("(define (problem amo) (:domain prefs-log) (:objects o1 o2 t1 l1 l2)\n"
                       " (:init (obj o1) (obj o2) (truck t1) (location l1) (location l2) (at t1 l1) (at o1 l1)"
                       " (at o2 l1))\n (:goal (and (at o1 l1)))\n"
                       " (:constraints (at-most-once (exists (?x) (at ?x l1)))))\n")
    plan = parse_plan_text((folder / "p01.safety-after-soft.plan").read_text())
    for validator in validators:
        r = validator.validate(folder / "domain.pddl", problem, plan)
        assert (r.label, r.failed_step, r.violation_state_index) == (Label.SAFETY_CONSTRAINTS_VIOLATION, 7, 6), r
        assert r.violated_constraint and "exists" in r.violated_constraint.lower()
