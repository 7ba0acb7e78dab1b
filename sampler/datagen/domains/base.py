"""What every domain generator provides: file-name convention, parameter checks, seeded problem sampling."""

from __future__ import annotations

import random
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping

from reward_service.pddl.model import (
    Action,
    And,
    Atom,
    Constraint,
    ConstraintAnd,
    Domain,
    Effect,
    Equals,
    Not,
    Param,
    Predicate,
    Problem,
)

Params = Mapping[str, int]
Var = tuple[str, str | None]  # (?var, type or None when untyped)
GroundAtom = tuple[str, ...]


class DomainSizeError(ValueError):
    """Sizes a generator cannot build a problem for (raised before any work)."""


class DomainGenerator(ABC):
    """One planning domain: its PDDL, its problem-name convention and a seeded problem sampler."""

    name: str
    domain: Domain
    param_names: tuple[str, ...]  # in file-name order
    name_pattern: re.Pattern[str]  # named groups: param names + "seed" (others, e.g. "ops", are ignored)
    families: tuple[str, ...]  # safety-constraint families this domain emits
    compact_omit: frozenset[str] = frozenset()  # static predicates left out of compact prompts

    @abstractmethod
    def problem_name(self, params: Params, seed: int) -> str:
        """File stem, e.g. `ferry-l3-c2-s17`."""

    def parse_name(self, stem: str) -> tuple[dict[str, int], int]:
        """Parameters and seed from a file stem (or file name); ValueError when it does not match."""
        stem = stem.rsplit("/", 1)[-1].removesuffix(".pddl")
        m = self.name_pattern.fullmatch(stem)
        if m is None:
            raise ValueError(f"{self.name}: problem name {stem!r} does not match {self.name_pattern.pattern}")
        return {k: int(m[k]) for k in self.param_names}, int(m["seed"])

    @abstractmethod
    def check_params(self, params: Params) -> None:
        """Raise DomainSizeError with a clear message when no problem has these sizes."""

    @abstractmethod
    def sample(self, rng: random.Random, params: Params, constrained: bool) -> Problem:
        """One problem (not yet checked solvable); with `constrained`, it carries safety constraints."""

    def _check_keys(self, params: Params) -> None:
        if set(params) != set(self.param_names):
            raise DomainSizeError(
                f"{self.name}: sizes need exactly the parameters {list(self.param_names)}, got {sorted(params)}"
            )
        for k, v in params.items():
            if not isinstance(v, int) or isinstance(v, bool):
                raise DomainSizeError(f"{self.name}: size {k}={v!r} is not an integer")


def lit(*xs: str) -> Atom:
    return Atom(xs[0], tuple(xs[1:]))


def _params(vs: tuple[Var, ...]) -> tuple[Param, ...]:
    return tuple(Param(v, t or "object") for v, t in vs)


def action(name: str, params: tuple[Var, ...], pre: tuple[Atom, ...], add: tuple[Atom, ...],
           delete: tuple[Atom, ...], pre_neg: tuple[Atom, ...] = (), neq: tuple[tuple[str, str], ...] = ()) -> Action:
    """A STRIPS action: precondition `(and pre... (not pre_neg)... (not (= a b))...)`, effect adds then deletes."""
    precondition = And((*pre, *(Not(p) for p in pre_neg), *(Not(Equals(a, b)) for a, b in neq)))
    return Action(name, _params(params), precondition, Effect(add, delete))


def domain(name: str, requirements: tuple[str, ...], types: tuple[tuple[str, str], ...],
           predicates: tuple[tuple[str, tuple[Var, ...]], ...], actions: tuple[Action, ...]) -> Domain:
    """A model Domain from compact declarations (`types` empty when untyped)."""
    return Domain(name, frozenset(requirements), types, (),
                  tuple(Predicate(p, _params(vs)) for p, vs in predicates), actions)


def problem(domain: Domain, objects: tuple[tuple[str, str | None], ...], init: tuple[GroundAtom, ...],
            goal: tuple[GroundAtom, ...], constraints: tuple[Constraint, ...] = (), name: str = "") -> Problem:
    """A model Problem; `init` keeps its order for printing, several constraints are joined by `and`."""
    init_order = tuple(lit(*a) for a in init)
    cons = None if not constraints else constraints[0] if len(constraints) == 1 else ConstraintAnd(constraints)
    return Problem(name, domain.name, tuple((o, t or "object") for o, t in objects), frozenset(init_order),
                   And(tuple(lit(*g) for g in goal)), cons, init_order=init_order)


def unsatisfied_goals(task_init: tuple, goal: tuple) -> bool:
    """True when at least one goal atom is false initially (a problem with something to do)."""
    init = set(task_init)
    return any(g not in init for g in goal)
