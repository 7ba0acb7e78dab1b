"""PDDL text of a model Domain / Problem, in the one layout datagen writes (`reward_service.pddl` parses it back).

A variable or object of type `object` prints bare (`?x`, `a`): untyped domains print as they were written,
and in typed ones the bare form means the same. `:requirements` print in the PDDL 3.1 order; `:init` in the
problem's `init_order` when it has one (datagen's declaration order), else sorted.
"""

from __future__ import annotations

from reward_service.pddl.model import (
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
    Formula,
    IgnoredConstraint,
    Imply,
    Modal,
    Not,
    Or,
    Param,
    Problem,
)

# the order of the PDDL 3.1 BNF; requirements outside it print after these, sorted
REQUIREMENT_ORDER = (
    ":strips", ":typing", ":negative-preconditions", ":disjunctive-preconditions", ":equality",
    ":existential-preconditions", ":universal-preconditions", ":quantified-preconditions", ":conditional-effects",
    ":fluents", ":numeric-fluents", ":object-fluents", ":adl", ":durative-actions", ":duration-inequalities",
    ":continuous-effects", ":derived-predicates", ":timed-initial-literals", ":preferences", ":constraints",
    ":action-costs",
)


def typed(name: str, type_name: str) -> str:
    """`name - type`, or the bare name for type `object`."""
    return name if type_name == "object" else f"{name} - {type_name}"


def params_text(params: tuple[Param, ...]) -> str:
    return " ".join(typed(p.name, p.type) for p in params)


def formula_text(f: Formula) -> str:
    if isinstance(f, Atom | Equals):
        return str(f)
    if isinstance(f, Not):
        return f"(not {formula_text(f.arg)})"
    if isinstance(f, And | Or):
        return f"({'and' if isinstance(f, And) else 'or'} " + " ".join(map(formula_text, f.args)) + ")"
    if isinstance(f, Imply):
        return f"(imply {formula_text(f.left)} {formula_text(f.right)})"
    if isinstance(f, Forall | Exists):
        head = "forall" if isinstance(f, Forall) else "exists"
        return f"({head} ({params_text(f.params)}) {formula_text(f.body)})"
    raise TypeError(f"not a formula: {f!r}")


def constraint_text(c: Constraint) -> str:
    if isinstance(c, Modal):
        parts = (c.first,) if c.second is None else (c.first, c.second)
        return f"({c.kind} " + " ".join(map(formula_text, parts)) + ")"
    if isinstance(c, ConstraintAnd):
        return "(and " + " ".join(map(constraint_text, c.args)) + ")"
    if isinstance(c, ConstraintForall):
        return f"(forall ({params_text(c.params)}) {constraint_text(c.body)})"
    if isinstance(c, ConstraintPreference):
        return "(preference " + " ".join(([c.name] if c.name else []) + [constraint_text(c.body)]) + ")"
    if isinstance(c, IgnoredConstraint):
        return c.text
    raise TypeError(f"not a constraint: {c!r}")


def effect_text(e: Effect) -> str:
    if e.costs:
        raise ValueError("the printer does not print action costs")
    parts = [str(a) for a in e.adds] + [f"(not {d})" for d in e.deletes]
    parts += [f"(when {formula_text(w.condition)} {effect_text(w.effect)})" for w in e.whens]
    parts += [f"(forall ({params_text(f.params)}) {effect_text(f.effect)})" for f in e.foralls]
    return "(and " + " ".join(parts) + ")"


def _requirements(reqs: frozenset[str]) -> str:
    known = [r for r in REQUIREMENT_ORDER if r in reqs]
    return " ".join(known + sorted(reqs - set(known)))


def _typed_list(items: tuple[tuple[str, str], ...]) -> str:
    """`a b - t c - u`: names grouped by type in first-appearance order; type `object` names bare."""
    groups: dict[str, list[str]] = {}
    for name, type_name in items:
        groups.setdefault(type_name, []).append(name)
    return " ".join(" ".join(ns) if t == "object" else f"{' '.join(ns)} - {t}" for t, ns in groups.items())


def domain_to_pddl(domain: Domain) -> str:
    """The domain file's text."""
    if domain.functions:
        raise ValueError(f"{domain.name}: the printer does not print :functions")
    lines = [f"(define (domain {domain.name})", f"  (:requirements {_requirements(domain.requirements)})"]
    if domain.types:
        lines.append("  (:types " + " ".join(f"{t} - {p}" for t, p in domain.types) + ")")
    if domain.constants:
        lines.append(f"  (:constants {_typed_list(domain.constants)})")
    preds = ["(" + " ".join([p.name] + ([params_text(p.params)] if p.params else [])) + ")" for p in domain.predicates]
    lines.append("  (:predicates " + " ".join(preds) + ")")
    if domain.constraints is not None:
        lines.append(f"  (:constraints {constraint_text(domain.constraints)})")
    for a in domain.actions:
        lines += [
            f"  (:action {a.name}",
            f"    :parameters ({params_text(a.params)})",
            f"    :precondition {formula_text(a.precondition)}",
            f"    :effect {effect_text(a.effect)})",
        ]
    return "\n".join(lines) + ")\n"


def problem_to_pddl(problem: Problem) -> str:
    """The problem file's text (its own constraints only: a domain's constraints belong to the domain file)."""
    if problem.preferences or problem.numeric_init or problem.metric is not None:
        raise ValueError(f"{problem.name}: the printer does not print preferences, numeric facts or metrics")
    init = problem.init_order or tuple(sorted(problem.init, key=lambda a: (a.predicate, a.args)))
    lines = [
        f"(define (problem {problem.name})",
        f"  (:domain {problem.domain_name})",
        f"  (:objects {_typed_list(problem.objects)})",
        "  (:init " + " ".join(map(str, init)) + ")",
        f"  (:goal {formula_text(problem.goal)})",
    ]
    if problem.constraints is not None:
        lines.append(f"  (:constraints {constraint_text(problem.constraints)})")
    return "\n".join(lines) + ")\n"
