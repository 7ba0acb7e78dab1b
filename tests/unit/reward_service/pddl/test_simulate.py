"""Grounding and the state simulator: effects, conditional effects, quantifiers, equality, monitors."""

from __future__ import annotations

import pytest

from reward_service.pddl import Simulator, parse_domain, parse_problem

DOMAIN = """(define (domain sw) (:requirements :strips :typing :equality :negative-preconditions
   :conditional-effects :constraints)
  (:types lamp room)
  (:predicates (on ?l - lamp) (in ?l - lamp ?r - room) (dark ?r - room) (flag) (mark ?r - room))
  (:action toggle :parameters (?l - lamp)
    :effect (and (when (on ?l) (not (on ?l))) (when (not (on ?l)) (on ?l))))
  (:action all-off :parameters ()
    :precondition (exists (?l - lamp) (on ?l))
    :effect (forall (?l - lamp) (not (on ?l))))
  (:action flip-flag :parameters ()
    :effect (and (not (flag)) (flag)))
  (:action mark-two :parameters (?a - room ?b - room)
    :precondition (and (not (= ?a ?b)) (forall (?l - lamp) (imply (in ?l ?a) (not (on ?l)))))
    :effect (and (mark ?a) (mark ?b))))"""


def sim(init: str = "", goal: str = "(and)", constraints: str = "") -> Simulator:
    domain = parse_domain(DOMAIN)
    text = (f"(define (problem p) (:domain sw) (:objects l1 l2 - lamp r1 r2 - room)"
            f" (:init (in l1 r1) (in l2 r2) {init}) (:goal {goal})"
            + (f" (:constraints {constraints})" if constraints else "") + ")")
    return Simulator(domain, parse_problem(text, domain))


def test_conditional_effects_read_the_pre_state():
    s = sim("(on l1)", "(and (not (on l1)) (on l2))")
    assert s.run([("toggle", ("l1",)), ("toggle", ("l2",))]).kind == "success"
    assert s.run([("toggle", ("l1",)), ("toggle", ("l1",))]).kind == "goal"


def test_forall_effect_and_exists_precondition():
    s = sim("(on l1) (on l2)", "(forall (?l - lamp) (not (on ?l)))")
    assert s.run([("all-off", ())]).kind == "success"
    out = s.run([("all-off", ()), ("all-off", ())])
    assert (out.kind, out.failed_step) == ("precondition", 2)


def test_delete_then_add_keeps_the_atom():
    assert sim("", "(flag)").run([("flip-flag", ())]).kind == "success"


def test_equality_and_quantified_precondition_report_unsatisfied_conjuncts():
    s = sim("(on l1)", "(mark r2)")
    out = s.run([("mark-two", ("r1", "r1"))])
    assert (out.kind, out.failed_step) == ("precondition", 1)
    assert out.unsatisfied == ("(not (= r1 r1))", "(forall (?l - lamp) (imply (in ?l r1) (not (on ?l))))")
    assert s.run([("mark-two", ("r2", "r1"))]).kind == "success"


def test_goal_counts_flatten_forall_and_nested_and():
    s = sim("", "(and (forall (?r - room) (mark ?r)) (and (flag) (= l1 l1)))")
    assert len(s.goal_parts) == 3
    out = s.run([("mark-two", ("r1", "r2"))])
    assert (out.kind, out.goals_satisfied, out.goals_total) == ("goal", 2, 3)


@pytest.mark.parametrize(
    ("constraint", "plan", "expected"),
    [
        # always: state 0 included; a violation at state k lets step k+1 run, then stops: failed_step k+1
        ("(always (on l1))", [("toggle", ("l2",))], ("safety", 1)),
        ("(always (not (on l1)))", [("toggle", ("l1",)), ("toggle", ("l1",)), ("toggle", ("l2",))], ("safety", 2)),
        ("(always (not (on l1)))", [("toggle", ("l1",)), ("all-off", ())], ("safety", 2)),
        # a violation at state k and a failing step k+1: the precondition failure wins
        ("(always (not (on l1)))", [("toggle", ("l1",)), ("mark-two", ("r1", "r1"))], ("precondition", 2)),
        # the final state's violation is reported by the goal check
        ("(always (not (on l1)))", [("toggle", ("l1",))], ("goal", None)),
        ("(sometime (on l2))", [("toggle", ("l1",))], ("goal", None)),
        ("(sometime (on l2))", [("toggle", ("l2",)), ("toggle", ("l2",))], ("success", None)),
        ("(at end (on l2))", [("toggle", ("l2",)), ("toggle", ("l2",))], ("goal", None)),
        ("(at-most-once (on l1))", [("toggle", ("l1",)), ("toggle", ("l2",)), ("toggle", ("l1",))],
         ("success", None)),
        ("(at-most-once (on l1))", [("toggle", ("l1",)), ("toggle", ("l1",)), ("toggle", ("l1",)),
                                    ("toggle", ("l2",))], ("safety", 4)),
        ("(sometime-before (on l2) (on l1))", [("toggle", ("l1",)), ("toggle", ("l2",))], ("success", None)),
        ("(sometime-before (on l2) (on l1))", [("toggle", ("l2",)), ("toggle", ("l1",))], ("safety", 2)),
        ("(sometime-before (mark r1) (mark r2))", [("mark-two", ("r1", "r2")), ("toggle", ("l1",))],
         ("safety", 2)),  # strictly before: both at once is a violation
        ("(sometime-after (on l1) (on l2))", [("toggle", ("l1",)), ("toggle", ("l2",))], ("success", None)),
        ("(sometime-after (on l1) (on l2))", [("toggle", ("l2",)), ("toggle", ("l2",)), ("toggle", ("l1",))],
         ("goal", None)),
        ("(forall (?l - lamp) (at-most-once (on ?l)))",
         [("toggle", ("l2",)), ("toggle", ("l2",)), ("toggle", ("l2",)), ("toggle", ("l1",))], ("safety", 4)),
        ("(always (forall (?l - lamp) (imply (on ?l) (flag))))", [("toggle", ("l1",)), ("toggle", ("l2",))],
         ("safety", 2)),
        ("(or (always (flag)) (sometime (flag)))", [("toggle", ("l1",))], ("success", None)),  # VAL ignores it
    ],
)
def test_trajectory_monitors(constraint, plan, expected):
    out = sim("", "(and)", constraint).run(plan)
    assert (out.kind, out.failed_step) == expected
    if out.kind == "safety":
        assert out.violated is not None
        assert out.state_index == out.failed_step - 1  # the state that broke it; VAL then ran one more step
    else:
        assert out.state_index is None


def test_empty_plan_checks_goal_then_constraints_on_the_initial_state():
    assert sim("(on l1)", "(on l1)", "(always (on l1))").run([]).kind == "success"
    out = sim("(on l1)", "(on l1)", "(sometime (on l2))").run([])
    assert (out.kind, out.violated) == ("goal", "(sometime (on l2))")


def test_ground_actions_are_cached_not_the_whole_space():
    s = sim("(on l1)")
    s.run([("toggle", ("l1",)), ("toggle", ("l1",))])
    assert len(s.grounder._actions) == 1
