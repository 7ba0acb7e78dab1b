"""The parsed model of the fixture domains and problems: contents, type hierarchy, immutability, pickling."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from reward_service.pddl import (
    And,
    Atom,
    ConstraintAnd,
    ConstraintForall,
    Forall,
    IgnoredConstraint,
    Modal,
    load_domain,
    load_problem,
    parse_domain,
    parse_problem,
)

FIXTURES = Path(__file__).parents[3] / "fixtures" / "pddl"
DOMAINS = ["blocksworld", "ferry", "grippers", "spanner", "delivery"]


@pytest.mark.parametrize("name", DOMAINS)
def test_fixture_domain_and_problem_parse_and_pickle(name):
    domain = load_domain(FIXTURES / name / "domain.pddl")
    problem = load_problem(FIXTURES / name / "p01.pddl", domain)
    assert domain.name == name and problem.domain_name == name
    assert problem.constraints is not None and problem.init
    for obj in (domain, problem):
        assert pickle.loads(pickle.dumps(obj)) == obj
    with pytest.raises(dataclasses.FrozenInstanceError):
        domain.name = "x"


def test_blocksworld_model_contents():
    domain = load_domain(FIXTURES / "blocksworld" / "domain.pddl")
    assert [a.name for a in domain.actions] == ["pick-up", "put-down", "stack", "unstack"]
    stack = domain.action_index["stack"]
    assert [p.name for p in stack.params] == ["?ob", "?underob"]
    assert stack.precondition == And((Atom("clear", ("?underob",)), Atom("holding", ("?ob",))))
    assert Atom("on", ("?ob", "?underob")) in stack.effect.adds
    assert Atom("holding", ("?ob",)) in stack.effect.deletes
    problem = load_problem(FIXTURES / "blocksworld" / "p01.pddl", domain)
    assert Atom("on", ("c", "a")) in problem.init and len(problem.init) == 6
    kinds = [c.kind for c in problem.constraints.args]
    assert kinds == ["always", "sometime", "at-most-once", "sometime-before"]


def test_types_constants_and_hierarchy():
    domain = load_domain(FIXTURES / "delivery" / "domain.pddl")
    assert domain.constants == (("depot", "cell"),)
    assert domain.is_subtype("truck", "vehicle") and domain.is_subtype("truck", "object")
    assert not domain.is_subtype("vehicle", "truck") and not domain.is_subtype("cell", "package")
    problem = load_problem(FIXTURES / "delivery" / "p01.pddl", domain)
    assert problem.all_objects["depot"] == "cell" and problem.all_objects["t1"] == "truck"
    assert isinstance(problem.goal, Forall)
    spanner = load_domain(FIXTURES / "spanner" / "domain.pddl")
    assert spanner.is_subtype("man", "locatable")


def test_constraints_before_goal_forall_and_at_end():
    grippers = load_domain(FIXTURES / "grippers" / "domain.pddl")
    problem = load_problem(FIXTURES / "grippers" / "p01.pddl", grippers)
    first, second, third = problem.constraints.args
    assert isinstance(first, ConstraintForall) and first.body.kind == "always"
    assert second.kind == "sometime-before" and second.second == Atom("at", ("ball1", "roomb"))
    assert third == Modal("at end", Atom("at-robby", ("robot1", "rooma")), None, third.line)
    assert str(third) == "(at end (at-robby robot1 rooma))"


def test_domain_constraints_join_problem_constraints_and_or_is_ignored():
    domain = parse_domain("""(define (domain d) (:requirements :strips :constraints)
      (:predicates (p ?x) (q))
      (:action a :parameters () :effect (q))
      (:constraints (forall (?x) (always (not (p ?x))))))""")
    assert isinstance(domain.constraints, ConstraintForall)
    problem = parse_problem("""(define (problem x) (:domain d) (:objects o) (:init)
      (:constraints (or (sometime (q)) (always (q))))
      (:goal (and)))""", domain)
    assert isinstance(problem.constraints, ConstraintAnd)
    assert problem.constraints.args[0] == domain.constraints
    assert isinstance(problem.constraints.args[1], IgnoredConstraint)


def test_case_insensitive_and_object_type_declared():
    domain = parse_domain("""(DEFINE (DOMAIN D) (:REQUIREMENTS :STRIPS :TYPING)
      (:TYPES OBJECT BOX - OBJECT) (:PREDICATES (Full ?B - Box))
      (:ACTION Fill :PARAMETERS (?B - BOX) :PRECONDITION (NOT (FULL ?B)) :EFFECT (FULL ?B)))""")
    assert domain.name == "d" and domain.type_parent == {"box": "object"}
    assert domain.action_index["fill"].params[0].type == "box"
