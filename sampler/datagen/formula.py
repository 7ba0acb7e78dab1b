"""PDDL3 formulas and trajectory constraints: PDDL rendering, grounding and search monitors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

Rename = Mapping[str, str]
Objects = Mapping[str, tuple[str, ...]]  # type name -> objects of that type (subtypes included)
Atom = tuple[str, ...]  # ground atom: (predicate, arg, ...)


def _r(name: str, rename: Rename) -> str:
    return rename.get(name, name)


def typed_var(var: str, type_name: str | None, rename: Rename) -> str:
    """`?v - type` (type renamed), or the bare variable when untyped: parameter lists and forall heads."""
    return var if type_name is None else f"{var} - {_r(type_name, rename)}"


@dataclass(frozen=True)
class Lit:
    """An atom whose arguments are objects or `?variables`."""

    pred: str
    args: tuple[str, ...] = ()

    def to_pddl(self, rename: Rename = {}) -> str:  # noqa: B006 - read-only default
        args = [a if a.startswith("?") else _r(a, rename) for a in self.args]
        return "(" + " ".join([_r(self.pred, rename), *args]) + ")"


@dataclass(frozen=True)
class Not:
    arg: Formula

    def to_pddl(self, rename: Rename = {}) -> str:  # noqa: B006
        return f"(not {self.arg.to_pddl(rename)})"


@dataclass(frozen=True)
class And:
    args: tuple[Formula, ...]

    def to_pddl(self, rename: Rename = {}) -> str:  # noqa: B006
        return "(and " + " ".join(a.to_pddl(rename) for a in self.args) + ")"


@dataclass(frozen=True)
class Imply:
    cond: Formula
    then: Formula

    def to_pddl(self, rename: Rename = {}) -> str:  # noqa: B006
        return f"(imply {self.cond.to_pddl(rename)} {self.then.to_pddl(rename)})"


@dataclass(frozen=True)
class Forall:
    """`(forall (?v - type) body)`; `type` is None in untyped domains (all objects)."""

    var: str
    type: str | None
    body: Formula

    def to_pddl(self, rename: Rename = {}) -> str:  # noqa: B006
        return f"(forall ({typed_var(self.var, self.type, rename)}) {self.body.to_pddl(rename)})"


Formula = Lit | Not | And | Imply | Forall


@dataclass(frozen=True)
class Always:
    arg: Formula
    family: str = "always"

    def to_pddl(self, rename: Rename = {}) -> str:  # noqa: B006
        return f"(always {self.arg.to_pddl(rename)})"


@dataclass(frozen=True)
class SometimeBefore:
    """phi may hold only in a state strictly after one where psi held (VAL's reading, checked)."""

    phi: Formula
    psi: Formula
    family: str = "sometime-before"

    def to_pddl(self, rename: Rename = {}) -> str:  # noqa: B006
        return f"(sometime-before {self.phi.to_pddl(rename)} {self.psi.to_pddl(rename)})"


@dataclass(frozen=True)
class AtMostOnce:
    arg: Formula
    family: str = "at-most-once"

    def to_pddl(self, rename: Rename = {}) -> str:  # noqa: B006
        return f"(at-most-once {self.arg.to_pddl(rename)})"


@dataclass(frozen=True)
class ForallConstraint:
    """`(forall (?v - type) <constraint>)` over a constraint, e.g. at-most-once per object."""

    var: str
    type: str | None
    body: Constraint

    @property
    def family(self) -> str:
        return "forall-" + self.body.family

    def to_pddl(self, rename: Rename = {}) -> str:  # noqa: B006
        return f"(forall ({typed_var(self.var, self.type, rename)}) {self.body.to_pddl(rename)})"


Constraint = Always | SometimeBefore | AtMostOnce | ForallConstraint


def substitute(f: Formula | Constraint, var: str, obj: str) -> Formula | Constraint:
    """Replace `var` by `obj` everywhere in a formula or constraint."""
    if isinstance(f, Lit):
        return Lit(f.pred, tuple(obj if a == var else a for a in f.args))
    if isinstance(f, Not):
        return Not(substitute(f.arg, var, obj))
    if isinstance(f, And):
        return And(tuple(substitute(a, var, obj) for a in f.args))
    if isinstance(f, Imply):
        return Imply(substitute(f.cond, var, obj), substitute(f.then, var, obj))
    if isinstance(f, Forall | ForallConstraint):
        return f if f.var == var else type(f)(f.var, f.type, substitute(f.body, var, obj))
    if isinstance(f, Always | AtMostOnce):
        return type(f)(substitute(f.arg, var, obj))
    if isinstance(f, SometimeBefore):
        return SometimeBefore(substitute(f.phi, var, obj), substitute(f.psi, var, obj))
    raise TypeError(f"not a formula or constraint: {f!r}")


def objects_of(type_name: str | None, objects: Objects) -> tuple[str, ...]:
    """Objects a variable of this type ranges over (all objects when untyped)."""
    return objects[type_name if type_name is not None else "object"]


StateTest = Callable[[int], bool]


def compile_formula(f: Formula, bits: Mapping[Atom, int], objects: Objects) -> StateTest:
    """A test on a bit-set state; atoms that can never hold (no bit) are false."""
    if isinstance(f, Lit):
        mask = 1 << bits[(f.pred, *f.args)] if (f.pred, *f.args) in bits else 0
        return lambda s: bool(s & mask)
    if isinstance(f, Not):
        inner = compile_formula(f.arg, bits, objects)
        return lambda s: not inner(s)
    if isinstance(f, And):
        parts = [compile_formula(a, bits, objects) for a in f.args]
        return lambda s: all(p(s) for p in parts)
    if isinstance(f, Imply):
        cond, then = compile_formula(f.cond, bits, objects), compile_formula(f.then, bits, objects)
        return lambda s: (not cond(s)) or then(s)
    if isinstance(f, Forall):
        parts = [compile_formula(substitute(f.body, f.var, o), bits, objects) for o in objects_of(f.type, objects)]
        return lambda s: all(p(s) for p in parts)
    raise TypeError(f"not a formula: {f!r}")


@dataclass(frozen=True)
class Monitor:
    """One ground constraint as an automaton: `step(mstate, state) -> mstate | None` (None = violated)."""

    kind: str
    test: StateTest
    test2: StateTest | None = None

    def start(self, s: int) -> int | None:
        return self.step(0, s)

    def step(self, m: int, s: int) -> int | None:
        if self.kind == "always":
            return 0 if self.test(s) else None
        if self.kind == "sometime-before":  # m = 1 once psi held in an earlier state
            if self.test(s) and not m:
                return None
            return 1 if (m or self.test2(s)) else 0
        # at-most-once: 0 never held, 1 holding now, 2 held and stopped
        if self.test(s):
            return None if m == 2 else 1
        return 2 if m == 1 else m


def compile_constraints(cons: tuple[Constraint, ...], bits: Mapping[Atom, int], objects: Objects) -> list[Monitor]:
    """Ground every constraint (expanding `forall`) into monitors."""
    out: list[Monitor] = []
    for c in cons:
        if isinstance(c, ForallConstraint):
            subs = tuple(substitute(c.body, c.var, o) for o in objects_of(c.type, objects))
            out.extend(compile_constraints(subs, bits, objects))
        elif isinstance(c, Always):
            out.append(Monitor("always", compile_formula(c.arg, bits, objects)))
        elif isinstance(c, SometimeBefore):
            out.append(
                Monitor("sometime-before", compile_formula(c.phi, bits, objects), compile_formula(c.psi, bits, objects))
            )
        elif isinstance(c, AtMostOnce):
            out.append(Monitor("at-most-once", compile_formula(c.arg, bits, objects)))
        else:
            raise TypeError(f"not a constraint: {c!r}")
    return out
