"""Domain schemas and problem tasks: one source for the PDDL text and the planner's ground STRIPS model."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from sampler.datagen.formula import Atom, Constraint, Lit, Rename, objects_of, typed_var

Param = tuple[str, str | None]  # (?var, type or None when untyped)
DOMAIN_KEY = ":domain"  # renaming key of the domain's own name (its own namespace: spanner is also a type)


@dataclass(frozen=True)
class Schema:
    """A STRIPS action schema; `neq` pairs render as `(not (= ?a ?b))`."""

    name: str
    params: tuple[Param, ...]
    pre: tuple[Lit, ...]
    add: tuple[Lit, ...]
    delete: tuple[Lit, ...]
    pre_neg: tuple[Lit, ...] = ()
    neq: tuple[tuple[str, str], ...] = ()

    def to_pddl(self, rename: Rename) -> str:
        params = " ".join(typed_var(v, t, rename) for v, t in self.params)
        pre = [p.to_pddl(rename) for p in self.pre]
        pre += [f"(not {p.to_pddl(rename)})" for p in self.pre_neg]
        pre += [f"(not (= {a} {b}))" for a, b in self.neq]
        eff = [a.to_pddl(rename) for a in self.add] + [f"(not {d.to_pddl(rename)})" for d in self.delete]
        return (
            f"  (:action {rename.get(self.name, self.name)}\n"
            f"    :parameters ({params})\n"
            f"    :precondition (and {' '.join(pre)})\n"
            f"    :effect (and {' '.join(eff)}))"
        )


@dataclass(frozen=True)
class DomainDef:
    """A domain: name, requirements, types as (type, parent), predicates and schemas."""

    name: str
    requirements: tuple[str, ...]
    types: tuple[tuple[str, str], ...]  # empty when untyped
    predicates: tuple[tuple[str, tuple[Param, ...]], ...]
    schemas: tuple[Schema, ...]

    @property
    def typed(self) -> bool:
        return bool(self.types)

    def names(self) -> tuple[list[str], list[str], list[str]]:
        """Predicate, action and type names (for symbolized renaming)."""
        return [p for p, _ in self.predicates], [s.name for s in self.schemas], [t for t, _ in self.types]

    def to_pddl(self, rename: Rename = {}) -> str:  # noqa: B006 - read-only default
        r = lambda n: rename.get(n, n)  # noqa: E731
        lines = [f"(define (domain {rename.get(DOMAIN_KEY, self.name)})"]
        lines.append(f"  (:requirements {' '.join(self.requirements)})")
        if self.types:
            types = " ".join(f"{r(t)} - {r(p) if p != 'object' else p}" for t, p in self.types)
            lines.append(f"  (:types {types})")
        preds = []
        for p, params in self.predicates:
            args = " ".join(typed_var(v, t, rename) for v, t in params)
            preds.append(f"({r(p)}{' ' + args if args else ''})")
        lines.append("  (:predicates " + " ".join(preds) + ")")
        lines += [s.to_pddl(rename) for s in self.schemas]
        return "\n".join(lines) + ")\n"

    def subtypes(self, t: str) -> set[str]:
        out = {t}
        changed = True
        while changed:
            new = {c for c, p in self.types if p in out} - out
            changed = bool(new)
            out |= new
        return out


@dataclass(frozen=True)
class GroundAction:
    name: str
    args: tuple[str, ...]
    pre: tuple[Atom, ...]
    pre_neg: tuple[Atom, ...]
    add: tuple[Atom, ...]
    delete: tuple[Atom, ...]

    def __str__(self) -> str:
        return "(" + " ".join((self.name, *self.args)) + ")"


@dataclass(frozen=True)
class Task:
    """A problem: objects in declaration order, init and goal atoms, constraints."""

    domain: DomainDef
    name: str
    objects: tuple[tuple[str, str | None], ...]  # (object, type or None)
    init: tuple[Atom, ...]
    goal: tuple[Atom, ...]
    constraints: tuple[Constraint, ...] = ()

    def objects_by_type(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {"object": tuple(o for o, _ in self.objects)}
        for t, _ in self.domain.types:
            sub = self.domain.subtypes(t)
            out[t] = tuple(o for o, ot in self.objects if ot in sub)
        return out

    def to_pddl(self, rename: Rename = {}, name: str | None = None) -> str:  # noqa: B006
        r = lambda n: rename.get(n, n)  # noqa: E731
        atom = lambda a: "(" + " ".join(r(x) for x in a) + ")"  # noqa: E731
        if self.domain.typed:
            groups: dict[str, list[str]] = {}
            for o, t in self.objects:
                groups.setdefault(t, []).append(r(o))
            objs = " ".join(f"{' '.join(os)} - {r(t)}" for t, os in groups.items())
        else:
            objs = " ".join(r(o) for o, _ in self.objects)
        lines = [
            f"(define (problem {name if name is not None else self.name})",
            f"  (:domain {rename.get(DOMAIN_KEY, self.domain.name)})",
            f"  (:objects {objs})",
            "  (:init " + " ".join(atom(a) for a in self.init) + ")",
            "  (:goal (and " + " ".join(atom(a) for a in self.goal) + "))",
        ]
        if self.constraints:
            body = " ".join(c.to_pddl(rename) for c in self.constraints)
            lines.append(f"  (:constraints (and {body}))" if len(self.constraints) > 1 else f"  (:constraints {body})")
        return "\n".join(lines) + ")\n"

    def ground(self) -> list[GroundAction]:
        """Every ground action whose static preconditions hold in init, in a fixed order."""
        fluent = {lit.pred for s in self.domain.schemas for lit in (*s.add, *s.delete)}
        init = set(self.init)
        by_type = self.objects_by_type()
        out: list[GroundAction] = []
        for s in self.domain.schemas:
            domains = [objects_of(t, by_type) for _, t in s.params]
            for combo in itertools.product(*domains):
                sub = dict(zip((v for v, _ in s.params), combo, strict=True))
                if any(sub[a] == sub[b] for a, b in s.neq):
                    continue
                inst = lambda lit: (lit.pred, *(sub.get(a, a) for a in lit.args))  # noqa: E731,B023
                pre = [inst(p) for p in s.pre]
                neg = [inst(p) for p in s.pre_neg]
                if any(p[0] not in fluent and p not in init for p in pre):
                    continue
                if any(p[0] not in fluent and p in init for p in neg):
                    continue
                out.append(
                    GroundAction(
                        s.name,
                        combo,
                        tuple(p for p in pre if p[0] in fluent),
                        tuple(p for p in neg if p[0] in fluent),
                        tuple(inst(a) for a in s.add),
                        tuple(inst(d) for d in s.delete),
                    )
                )
        return out
