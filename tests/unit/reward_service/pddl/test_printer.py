"""The printer: what it writes parses back to an equal model (fixtures, datagen's domains, random formulas)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reward_service.pddl import (
    And,
    Atom,
    ConstraintAnd,
    ConstraintForall,
    Equals,
    Exists,
    Forall,
    Imply,
    Modal,
    Not,
    Or,
    Param,
    Problem,
    load_domain,
    load_problem,
    parse_domain,
    parse_problem,
)
from reward_service.pddl.printer import domain_to_pddl, problem_to_pddl

FIXTURES = Path(__file__).parents[3] / "fixtures" / "pddl"
# fixtures in the printer's reach (no action costs, goal preferences or metrics)
PRINTABLE = ["blocksworld", "ferry", "grippers", "spanner", "delivery", "logistics-repeated", "storage-either",
             "tetris-supertype", "tpp-exists"]


def _plain(x):
    """The model without source positions (`line`, `filename`), which printing cannot keep."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        changes = {f.name: _plain(getattr(x, f.name)) for f in dataclasses.fields(x) if f.init}
        changes.update({k: v for k, v in (("line", 0), ("filename", "")) if k in changes})
        return dataclasses.replace(x, **changes)
    if isinstance(x, tuple):
        return tuple(map(_plain, x))
    if isinstance(x, frozenset):
        return frozenset(map(_plain, x))
    return x


def _round_trip(domain, problem=None):
    domain2 = parse_domain(domain_to_pddl(domain))
    assert _plain(domain2) == _plain(domain)
    if problem is not None:
        problem2 = parse_problem(problem_to_pddl(problem), domain2)
        assert _plain(problem2) == _plain(problem)
        return problem2
    return None


@pytest.mark.parametrize("name", PRINTABLE)
def test_fixture_round_trip(name):
    domain = load_domain(FIXTURES / name / "domain.pddl")
    problem = load_problem(FIXTURES / name / "p01.pddl", domain)
    _round_trip(domain, problem)
    # a second print of the parsed text is the same text (unordered init prints sorted)
    again = parse_problem(problem_to_pddl(problem), domain)
    assert problem_to_pddl(again) == problem_to_pddl(problem)


def test_datagen_models_round_trip():
    from sampler.datagen.domains import GENERATORS
    from sampler.datagen.generate import make_problem

    sizes = {"blocksworld": {"n": 4}, "ferry": {"l": 3, "c": 2}, "grippers": {"n": 2, "r": 3, "o": 2},
             "spanner": {"s": 2, "n": 2, "l": 2}, "delivery": {"s": 3, "p": 2}}
    for name, gen in GENERATORS.items():
        for seed in range(3):
            problem = make_problem(name, sizes[name], seed, "on").problem
            parsed = _round_trip(gen.domain, problem)
            assert parsed.constraints is not None


def test_layout():
    domain = parse_domain("""(define (domain d) (:requirements :constraints :typing :strips)
      (:types b - a a - object) (:predicates (p ?x - a) (q))
      (:action go :parameters (?x - b ?y) :precondition (and (p ?x) (not (= ?x ?y)))
               :effect (and (q) (not (p ?x)))))""")
    assert domain_to_pddl(domain) == (
        "(define (domain d)\n"
        "  (:requirements :strips :typing :constraints)\n"
        "  (:types b - a a - object)\n"
        "  (:predicates (p ?x - a) (q))\n"
        "  (:action go\n"
        "    :parameters (?x - b ?y)\n"
        "    :precondition (and (p ?x) (not (= ?x ?y)))\n"
        "    :effect (and (q) (not (p ?x)))))\n"
    )
    init = (Atom("q", ()), Atom("p", ("o2",)))
    problem = Problem("t", "d", (("o1", "b"), ("o2", "a"), ("o3", "b")), frozenset(init), And((Atom("q", ()),)),
                      Modal("always", Atom("q", ())), init_order=init)
    assert problem_to_pddl(problem) == (
        "(define (problem t)\n"
        "  (:domain d)\n"
        "  (:objects o1 o3 - b o2 - a)\n"
        "  (:init (q) (p o2))\n"
        "  (:goal (and (q)))\n"
        "  (:constraints (always (q))))\n"
    )
    assert problem_to_pddl(dataclasses.replace(problem, init_order=())).count("(:init (p o2) (q))") == 1


# ---- random formulas and constraints over one small typed domain ---------------------------------------

DOMAIN = parse_domain("""(define (domain r) (:requirements :strips :typing :constraints)
  (:types t u - object) (:predicates (p ?x - t) (q ?x - t ?y - u) (z))
  (:action a :parameters (?x - t) :precondition (p ?x) :effect (and (z) (not (p ?x)))))""")
OBJECTS = (("t1", "t"), ("t2", "t"), ("u1", "u"))
VARS = (("?v", "t"), ("?w", "u"))


def _atoms(bound: tuple[tuple[str, str], ...]):
    ts = st.sampled_from(["t1", "t2", *(v for v, ty in bound if ty == "t")])
    us = st.sampled_from(["u1", *(v for v, ty in bound if ty == "u")])
    return st.one_of(st.just(Atom("z", ())), ts.map(lambda a: Atom("p", (a,))),
                     st.tuples(ts, us).map(lambda xy: Atom("q", xy)))


def _formulas(bound=(), depth=3):
    leaf = _atoms(bound)
    if depth == 0:
        return leaf
    sub = _formulas(bound, depth - 1)
    free = [v for v in VARS if v[0] not in {b for b, _ in bound}]
    options = [leaf, sub.map(Not), st.lists(sub, min_size=1, max_size=3).map(lambda xs: And(tuple(xs))),
               st.lists(sub, min_size=1, max_size=3).map(lambda xs: Or(tuple(xs))),
               st.tuples(sub, sub).map(lambda lr: Imply(*lr)),
               st.just(Equals("t1", "t2")).map(Not)]
    for v, ty in free:
        inner = _formulas((*bound, (v, ty)), depth - 1)
        options.append(inner.map(lambda b, v=v, ty=ty: Forall((Param(v, ty),), b)))
        options.append(inner.map(lambda b, v=v, ty=ty: Exists((Param(v, ty),), b)))
    return st.one_of(options)


def _modal(bound=()):
    f = _formulas(bound, 2)
    one = st.sampled_from(["always", "sometime", "at-most-once", "at end"])
    two = st.sampled_from(["sometime-before", "sometime-after"])
    return st.one_of(st.tuples(one, f).map(lambda kf: Modal(kf[0], kf[1])),
                     st.tuples(two, f, f).map(lambda kfg: Modal(*kfg)))


CONSTRAINTS = st.one_of(
    _modal(),
    _modal((("?v", "t"),)).map(lambda m: ConstraintForall((Param("?v", "t"),), m)),
    st.lists(_modal(), min_size=2, max_size=3).map(lambda ms: ConstraintAnd(tuple(ms))),
)


@settings(max_examples=60, deadline=None)
@given(goal=_formulas(), constraint=st.one_of(st.none(), CONSTRAINTS),
       init=st.sets(_atoms(()), max_size=4))
def test_random_problems_round_trip(goal, constraint, init):
    problem = Problem("rnd", "r", OBJECTS, frozenset(init), goal, constraint, init_order=tuple(sorted(
        init, key=lambda a: (a.predicate, a.args)))[::-1])
    _round_trip(DOMAIN, problem)
