"""Renamed copies of model domains and problems (the symbolized prompt style): names mapped, variables kept."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from reward_service.pddl.model import (
    Action,
    And,
    Atom,
    Constraint,
    ConstraintAnd,
    ConstraintForall,
    ConstraintPreference,
    Domain,
    Effect,
    Equals,
    Exists,
    Forall,
    ForallEffect,
    Formula,
    IgnoredConstraint,
    Imply,
    Modal,
    Not,
    Or,
    Param,
    Predicate,
    Problem,
    When,
    either_members,
)

Names = Mapping[str, str]  # predicate, action, type and object names -> new names; others stay


class _Renamer:
    def __init__(self, names: Names) -> None:
        if "object" in names:
            raise ValueError("the root type `object` cannot be renamed")
        self.names = names

    def name(self, n: str) -> str:
        return n if n.startswith("?") else self.names.get(n, n)

    def type(self, t: str) -> str:
        if t.startswith("(either "):
            return "(either " + " ".join(self.name(m) for m in either_members(t)) + ")"
        return self.name(t)

    def params(self, ps: tuple[Param, ...]) -> tuple[Param, ...]:
        return tuple(Param(p.name, self.type(p.type)) for p in ps)

    def atom(self, a: Atom) -> Atom:
        return Atom(self.name(a.predicate), tuple(map(self.name, a.args)))

    def formula(self, f: Formula) -> Formula:
        if isinstance(f, Atom):
            return self.atom(f)
        if isinstance(f, Equals):
            return Equals(self.name(f.left), self.name(f.right))
        if isinstance(f, Not):
            return Not(self.formula(f.arg))
        if isinstance(f, And | Or):
            return type(f)(tuple(map(self.formula, f.args)))
        if isinstance(f, Imply):
            return Imply(self.formula(f.left), self.formula(f.right))
        if isinstance(f, Forall | Exists):
            return type(f)(self.params(f.params), self.formula(f.body))
        raise TypeError(f"not a formula: {f!r}")

    def effect(self, e: Effect) -> Effect:
        if e.costs:
            raise ValueError("renaming does not cover action costs")
        return Effect(
            tuple(map(self.atom, e.adds)), tuple(map(self.atom, e.deletes)),
            tuple(When(self.formula(w.condition), self.effect(w.effect)) for w in e.whens),
            tuple(ForallEffect(self.params(f.params), self.effect(f.effect)) for f in e.foralls),
        )

    def constraint(self, c: Constraint | None) -> Constraint | None:
        if c is None:
            return None
        if isinstance(c, Modal):
            second = None if c.second is None else self.formula(c.second)
            return Modal(c.kind, self.formula(c.first), second, c.line)
        if isinstance(c, ConstraintAnd):
            return ConstraintAnd(tuple(map(self.constraint, c.args)))
        if isinstance(c, ConstraintForall):
            return ConstraintForall(self.params(c.params), self.constraint(c.body))
        if isinstance(c, ConstraintPreference):
            return ConstraintPreference(c.name, self.constraint(c.body))
        if isinstance(c, IgnoredConstraint):
            raise ValueError("renaming does not cover constraints kept as text (or/not/imply over modals)")
        raise TypeError(f"not a constraint: {c!r}")

    def typed(self, items: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        return tuple((self.name(n), self.type(t)) for n, t in items)


def rename_domain(domain: Domain, names: Names, domain_name: str | None = None) -> Domain:
    """`domain` with its predicates, actions, types and constants renamed; `domain_name` (if set) as its name.

    The domain's own name is not looked up in `names` (a domain may share its name with a type: spanner).
    """
    if domain.functions:
        raise ValueError(f"{domain.name}: renaming does not cover :functions")
    r = _Renamer(names)
    return replace(
        domain,
        name=domain.name if domain_name is None else domain_name,
        types=r.typed(domain.types),
        constants=r.typed(domain.constants),
        predicates=tuple(Predicate(r.name(p.name), r.params(p.params)) for p in domain.predicates),
        actions=tuple(
            Action(r.name(a.name), r.params(a.params), r.formula(a.precondition), r.effect(a.effect), a.line)
            for a in domain.actions
        ),
        constraints=r.constraint(domain.constraints),
    )


def rename_problem(problem: Problem, names: Names, domain_name: str | None = None) -> Problem:
    """`problem` with objects, types and predicates renamed and `domain_name` (if set) as its domain; its own
    name is kept."""
    if problem.preferences or problem.numeric_init or problem.metric is not None:
        raise ValueError(f"{problem.name}: renaming does not cover preferences, numeric facts or metrics")
    r = _Renamer(names)
    return replace(
        problem,
        domain_name=problem.domain_name if domain_name is None else domain_name,
        objects=r.typed(problem.objects),
        constants=r.typed(problem.constants),
        init=frozenset(map(r.atom, problem.init)),
        init_order=tuple(map(r.atom, problem.init_order)),
        goal=r.formula(problem.goal),
        constraints=r.constraint(problem.constraints),
    )
