"""On-demand grounding: lifted formulas and effects -> propositional ones over ground atoms (tuples)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property

from reward_service.pddl.errors import PddlSemanticError
from reward_service.pddl.model import (
    Action,
    And,
    Atom,
    Domain,
    Effect,
    Equals,
    Exists,
    Forall,
    Formula,
    Imply,
    Not,
    Or,
    Param,
    Problem,
)

# Ground atoms are tuples ("on", "a", "b"); a state is a frozenset of them. A propositional formula is
# True/False, ("atom", atom), ("not", f), ("and", (f, ...)) or ("or", (f, ...)).
GroundAtom = tuple
Prop = object
# Quantifier instances one formula or effect may expand to, nested quantifiers multiplied: a forall over
# 4 variables x 65 objects (17.8M) grounded for minutes outside any deadline (issue 19); 100k is ~10 s here.
GROUNDING_BUDGET = 100_000


class GroundingBudgetError(PddlSemanticError):
    """A quantifier that expands to more instances than GROUNDING_BUDGET: the task is too big to ground."""


def atom_text(atom: GroundAtom) -> str:
    return "(" + " ".join(atom) + ")"


def holds(f: Prop, state: frozenset) -> bool:
    """Evaluate a propositional formula in a state (closed world)."""
    if f is True or f is False:
        return f
    tag = f[0]
    if tag == "atom":
        return f[1] in state
    if tag == "not":
        return not holds(f[1], state)
    if tag == "and":
        return all(holds(g, state) for g in f[1])
    return any(holds(g, state) for g in f[1])


def compile_prop(f: Prop):
    """A fast `state -> bool` closure for a propositional formula (monitors call it on every state)."""
    if f is True or f is False:
        return lambda state, value=f: value
    tag = f[0]
    if tag == "atom":
        return lambda state, a=f[1]: a in state
    if tag == "not" and f[1][0] == "atom":
        return lambda state, a=f[1][1]: a not in state
    if tag == "and" and all(g[0] == "atom" or (g[0] == "not" and g[1][0] == "atom") for g in f[1]):
        pos = frozenset(g[1] for g in f[1] if g[0] == "atom")
        neg = frozenset(g[1][1] for g in f[1] if g[0] == "not")
        return lambda state: pos <= state and neg.isdisjoint(state)
    if tag == "not":
        inner = compile_prop(f[1])
        return lambda state: not inner(state)
    parts = tuple(compile_prop(g) for g in f[1])
    if tag == "and":
        return lambda state: all(p(state) for p in parts)
    return lambda state: any(p(state) for p in parts)


def _and(parts: list) -> Prop:
    out = []
    for p in parts:
        if p is False:
            return False
        if p is not True:
            out.extend(p[1] if p[0] == "and" else (p,))
    return True if not out else out[0] if len(out) == 1 else ("and", tuple(out))


def _or(parts: list) -> Prop:
    out = []
    for p in parts:
        if p is True:
            return True
        if p is not False:
            out.extend(p[1] if p[0] == "or" else (p,))
    return False if not out else out[0] if len(out) == 1 else ("or", tuple(out))


def _not(p: Prop) -> Prop:
    if p is True or p is False:
        return not p
    return p[1] if p[0] == "not" else ("not", p)


@dataclass(frozen=True)
class GroundAction:
    """One action instance. `pos`/`neg` are set when the precondition is a conjunction of literals."""

    name: str
    args: tuple[str, ...]
    precondition: Prop
    conjuncts: tuple[tuple[str, Prop], ...]  # (text, formula) of each top-level precondition conjunct
    adds: frozenset
    deletes: frozenset
    conditional: tuple[tuple[Prop, frozenset, frozenset], ...]
    pos: frozenset | None
    neg: frozenset | None
    # :action-costs: what the step adds to total-cost; None when a cost function has no value in :init
    # (VAL: "Attempt to access undefined numeric expression!", no verdict)
    cost: float | None = 0.0

    def applicable(self, state: frozenset) -> bool:
        if self.pos is not None:
            return self.pos <= state and self.neg.isdisjoint(state)
        return holds(self.precondition, state)

    def apply(self, state: frozenset) -> frozenset:
        """Deletes first, then adds (so an atom both added and deleted stays true), as VAL does;
        conditions of `when` effects are read in the state before the action."""
        if not self.conditional:
            return (state - self.deletes) | self.adds
        adds, deletes = set(self.adds), set(self.deletes)
        for cond, c_adds, c_dels in self.conditional:
            if holds(cond, state):
                adds |= c_adds
                deletes |= c_dels
        return (state - deletes) | adds


def substitute(f: Formula, binding: dict[str, str]) -> Formula:
    """The lifted formula with bound variables replaced (for messages)."""
    if isinstance(f, Atom):
        return Atom(f.predicate, tuple(binding.get(a, a) for a in f.args))
    if isinstance(f, Equals):
        return Equals(binding.get(f.left, f.left), binding.get(f.right, f.right))
    if isinstance(f, Not):
        return Not(substitute(f.arg, binding))
    if isinstance(f, (And, Or)):
        return type(f)(tuple(substitute(a, binding) for a in f.args))
    if isinstance(f, Imply):
        return Imply(substitute(f.left, binding), substitute(f.right, binding))
    inner = {k: v for k, v in binding.items() if k not in {p.name for p in f.params}}
    return type(f)(f.params, substitute(f.body, inner))


def conjuncts(f: Formula) -> list[Formula]:
    """Top-level conjuncts, nested `and`s flattened (how VAL's advice lists unsatisfied goals)."""
    if isinstance(f, And):
        return [c for a in f.args for c in conjuncts(a)]
    return [f]


class Grounder:
    """Grounds formulas, effects and actions of one (domain, problem); caches ground actions."""

    _nested = 1  # instances of the quantifiers being expanded around the current one (the budget's count)

    def __init__(self, domain: Domain, problem: Problem) -> None:
        self.domain = domain
        self.problem = problem
        self._actions: dict[tuple[str, tuple[str, ...]], GroundAction] = {}
        self._by_type: dict[str, tuple[str, ...]] = {}
        self.values = {(a.predicate, *a.args): v for a, v in problem.numeric_init}  # static function values

    def cost_of(self, term: float | Atom, binding: dict[str, str]) -> float | None:
        """A cost term's value: the number, or the function's :init value (None when it has none)."""
        if not isinstance(term, Atom):
            return term
        return self.values.get((term.predicate, *(binding.get(a, a) for a in term.args)))

    @cached_property
    def init(self) -> frozenset:
        return frozenset((a.predicate, *a.args) for a in self.problem.init)

    def objects_of(self, type_name: str) -> tuple[str, ...]:
        found = self._by_type.get(type_name)
        if found is None:
            found = tuple(sorted(o for o, t in self.problem.all_objects.items()
                                 if self.domain.is_subtype(t, type_name)))
            self._by_type[type_name] = found
        return found

    def bindings(self, params: tuple[Param, ...], binding: dict[str, str]):
        """Every extension of `binding` over typed `params` (quantifier expansion), within GROUNDING_BUDGET
        instances counted with the quantifiers this one is nested in (raises GroundingBudgetError)."""
        domains = [self.objects_of(p.type) for p in params]
        outer, size = self._nested, math.prod(len(d) for d in domains)
        if outer * size > GROUNDING_BUDGET:
            names = " ".join(f"{p.name} - {p.type} ({len(d)} objects)" for p, d in zip(params, domains, strict=True))
            raise GroundingBudgetError(
                f"a quantifier over {names} expands to {outer * size:,} instances (with the quantifiers around it), "
                f"over the grounding budget of {GROUNDING_BUDGET:,}: the task is too big to ground",
                self.problem.filename)
        self._nested = outer * size  # consumers iterate nested expansions innermost-first, so a stack suffices
        try:
            for values in itertools.product(*domains):
                yield {**binding, **{p.name: v for p, v in zip(params, values, strict=True)}}
        finally:
            self._nested = outer

    def ground(self, f: Formula, binding: dict[str, str]) -> Prop:
        if isinstance(f, Atom):
            return ("atom", (f.predicate, *(binding.get(a, a) for a in f.args)))
        if isinstance(f, Equals):
            return binding.get(f.left, f.left) == binding.get(f.right, f.right)
        if isinstance(f, Not):
            return _not(self.ground(f.arg, binding))
        if isinstance(f, And):
            return _and([self.ground(a, binding) for a in f.args])
        if isinstance(f, Or):
            return _or([self.ground(a, binding) for a in f.args])
        if isinstance(f, Imply):
            return _or([_not(self.ground(f.left, binding)), self.ground(f.right, binding)])
        parts = [self.ground(f.body, b) for b in self.bindings(f.params, binding)]
        return _and(parts) if isinstance(f, Forall) else _or(parts) if isinstance(f, Exists) else None

    def _effect(self, eff: Effect, binding: dict[str, str], adds: set, dels: set, cond: list,
                costs: list | None = None) -> None:
        adds.update((a.predicate, *(binding.get(x, x) for x in a.args)) for a in eff.adds)
        dels.update((a.predicate, *(binding.get(x, x) for x in a.args)) for a in eff.deletes)
        if costs is not None:
            costs.extend(self.cost_of(c, binding) for c in eff.costs)
        for fe in eff.foralls:
            for b in self.bindings(fe.params, binding):
                self._effect(fe.effect, b, adds, dels, cond, costs)
        for w in eff.whens:
            c = self.ground(w.condition, binding)
            if c is False:
                continue
            w_adds: set = set()
            w_dels: set = set()
            w_cond: list = []
            self._effect(w.effect, binding, w_adds, w_dels, w_cond)
            if c is True:
                adds |= w_adds
                dels |= w_dels
                cond.extend(w_cond)
            else:
                cond.append((c, frozenset(w_adds), frozenset(w_dels)))
                cond.extend((_and([c, c2]), a2, d2) for c2, a2, d2 in w_cond)

    def action(self, action: Action, args: tuple[str, ...]) -> GroundAction:
        """The ground instance of `action` with `args` (checked by precheck), cached."""
        key = (action.name, args)
        found = self._actions.get(key)
        if found is not None:
            return found
        binding = {p.name: a for p, a in zip(action.params, args, strict=True)}
        pre = self.ground(action.precondition, binding)
        parts = tuple((str(substitute(c, binding)), self.ground(c, binding)) for c in conjuncts(action.precondition))
        pos = neg = None
        literals = [pre] if pre is True or pre is False or pre[0] != "and" else list(pre[1])
        if pre is True or (pre is not False and all(p[0] == "atom" or (p[0] == "not" and p[1][0] == "atom")
                                                    for p in literals)):
            lits = [] if pre is True else literals
            pos = frozenset(p[1] for p in lits if p[0] == "atom")
            neg = frozenset(p[1][1] for p in lits if p[0] == "not")
        adds: set = set()
        dels: set = set()
        cond: list = []
        costs: list = []
        self._effect(action.effect, binding, adds, dels, cond, costs)
        cost = None if None in costs else float(sum(costs))
        found = GroundAction(action.name, args, pre, parts, frozenset(adds), frozenset(dels), tuple(cond), pos, neg,
                             cost)
        self._actions[key] = found
        return found
