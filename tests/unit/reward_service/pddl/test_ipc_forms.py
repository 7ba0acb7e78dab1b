"""The IPC-style forms VAL reads and the parser now reads too (issue 20), and the features it refuses by name."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from reward_service.pddl import PddlSemanticError, PddlUnsupportedError, load_domain, load_problem, parse_domain
from reward_service.pddl.model import Atom, ConstraintAnd, ConstraintPreference

FIXTURES = Path(__file__).parents[3] / "fixtures" / "pddl"


def _task(name: str):
    domain = load_domain(FIXTURES / name / "domain.pddl")
    return domain, load_problem(FIXTURES / name / "p01.pddl", domain)


def test_action_costs_are_read_with_their_functions_and_metric():
    domain, problem = _task("roads-costs")
    assert [f.name for f in domain.functions] == ["total-cost", "road-length"]
    assert domain.action_index["drive"].effect.costs == (Atom("road-length", ("?a", "?b")),)
    assert domain.action_index["honk"].effect.costs == (1.0,)
    assert dict(problem.numeric_init)[Atom("road-length", ("a", "c"))] == 10.0
    assert problem.metric is not None and problem.metric.direction == "minimize"


def test_either_types_fit_each_member():
    domain, _ = _task("storage-either")
    lift = domain.action_index["lift"]
    assert lift.params[2].type == "(either storearea transitarea)"
    assert domain.is_subtype("transitarea", lift.params[2].type)
    assert not domain.is_subtype("crate", lift.params[2].type)


def test_an_undeclared_supertype_is_a_type_below_object():
    domain, problem = _task("tetris-supertype")
    assert domain.type_parent["pieces"] == "object"
    assert domain.is_subtype("two_straight", "pieces")
    assert problem.all_objects["t1"] == "two_straight"


def test_a_predicate_may_repeat_a_variable_name_but_an_action_may_not():
    domain, _ = _task("logistics-repeated")
    assert domain.predicate_index["in"].arity == 2
    with pytest.raises(PddlSemanticError, match="duplicate parameter"):
        parse_domain("(define (domain d) (:predicates (p ?x)) (:action a :parameters (?x ?x) :effect (p ?x)))")


def test_preferences_are_soft_goals_and_soft_constraints():
    _, problem = _task("prefs-logistics")
    assert [p.name for p in problem.preferences] == ["p-o2", "p-t"]
    assert "preference" not in str(problem.goal)
    assert isinstance(problem.constraints, ConstraintAnd)
    soft = [c for c in problem.constraints.args if isinstance(c, ConstraintPreference)]
    assert [c.name for c in soft] == ["p-safe", "p-once"]


@pytest.mark.parametrize(
    ("text", "requirement"),
    [
        ("(define (domain d) (:requirements :strips :durative-actions))", ":durative-actions"),
        ("(define (domain d) (:requirements :numeric-fluents))", ":numeric-fluents"),
        ("(define (domain d) (:requirements :derived-predicates))", ":derived-predicates"),
        ("(define (domain d) (:requirements :timed-initial-literals))", ":timed-initial-literals"),
        ("(define (domain d) (:predicates (p)) (:derived (p) (and)))", ":derived-predicates"),
        ("(define (domain d) (:predicates (p)) (:durative-action a :parameters () :duration (= ?duration 1)"
         " :condition (and) :effect (at end (p))))", ":durative-actions"),
        ("(define (domain d) (:predicates (p)) (:functions (fuel)) (:action a :parameters ()"
         " :precondition (> (fuel) 0) :effect (p)))", ":numeric-fluents"),
        ("(define (domain d) (:predicates (p)) (:functions (fuel)) (:action a :parameters ()"
         " :effect (decrease (fuel) 1)))", ":numeric-fluents"),
    ],
)
def test_unsimulated_features_are_refused_by_requirement(text, requirement):
    with pytest.raises(PddlUnsupportedError) as err:
        parse_domain(text, "d.pddl")
    assert err.value.requirement == requirement
    assert pickle.loads(pickle.dumps(err.value)).requirement == requirement
