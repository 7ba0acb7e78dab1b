"""Problem parsing: `(define (problem ...) ...)` text -> a checked, immutable Problem for a given Domain."""

from __future__ import annotations

from pathlib import Path

from reward_service.pddl.errors import PddlParseError, PddlSemanticError
from reward_service.pddl.model import (
    And,
    Atom,
    ConstraintAnd,
    Domain,
    Forall,
    Formula,
    GoalPreference,
    Metric,
    Problem,
)
from reward_service.pddl.parse_domain import _check_define
from reward_service.pddl.parse_formula import (
    Scope,
    expect_list,
    expect_sym,
    parse_atom,
    parse_constraint,
    parse_formula,
    parse_function_term,
    parse_params,
    typed_list,
)
from reward_service.pddl.sexpr import SExpr, SList, Sym, read_sexpr


def _has_preference(node: SExpr) -> bool:
    return isinstance(node, SList) and (node.head() == "preference" or any(map(_has_preference, node.items)))


def _goal(node: SExpr, scope: Scope, prefs: list[GoalPreference], params: tuple = ()) -> Formula:
    """The hard goal; `(preference NAME f)` under the top-level `and`/`forall` goes to `prefs` (soft goals)."""
    node = expect_list(node, scope, "a goal")
    head = node.head()
    if head == "and":
        return And(tuple(_goal(a, scope, prefs, params) for a in node.items[1:]))
    if head == "forall" and len(node.items) == 3 and _has_preference(node.items[2]):
        inner = parse_params(node.items[1], scope)
        return Forall(inner, _goal(node.items[2], scope.bind(inner), prefs, (*params, *inner)))
    if head == "preference":
        if len(node.items) not in (2, 3):
            raise scope.parse_error("expected (preference NAME goal)", node, str(node)[:60])
        name = expect_sym(node.items[1], scope, "a preference name").text if len(node.items) == 3 else ""
        prefs.append(GoalPreference(name, parse_formula(node.items[-1], scope), params))
        return And(())
    return parse_formula(node, scope)


def _metric_expr(node: SExpr, scope: Scope) -> tuple:
    if isinstance(node, Sym):
        if node.text == "total-time":
            return ("total-time",)
        try:
            return ("num", float(node.text))
        except ValueError:
            raise scope.parse_error("expected a number or (function ...) in the metric", node, node.text) from None
    head = node.head()
    if head in ("+", "-", "*", "/") and len(node.items) >= 2:
        return (head, *(_metric_expr(a, scope) for a in node.items[1:]))
    if head == "is-violated" and len(node.items) == 2:
        return ("is-violated", expect_sym(node.items[1], scope, "a preference name").text)
    if head == "total-time" and len(node.items) == 1:
        return ("total-time",)
    if head == "total-cost" and len(node.items) == 1:
        return ("fn", Atom("total-cost", ()))
    return ("fn", parse_function_term(node, scope))


def _numeric_fact(node: SList, scope: Scope) -> tuple[Atom, float]:
    """`(= (f a b) 3)` in :init, f a declared function (:action-costs)."""
    if len(node.items) != 3 or not isinstance(node.items[1], SList) or not isinstance(node.items[2], Sym):
        raise scope.unsupported("numeric initial values other than (= (f ...) NUMBER) are not supported", node,
                                "=", ":numeric-fluents")
    fn = node.items[1]
    term = Atom("total-cost", ()) if fn.head() == "total-cost" and len(fn) == 1 else parse_function_term(fn, scope)
    try:
        return term, float(node.items[2].text)
    except ValueError:
        raise scope.unsupported("object fluents are not supported", node, str(node), ":object-fluents") from None


def parse_problem(text: str, domain: Domain, filename: str = "<problem>") -> Problem:
    """Parse and check a problem against `domain`; raise PddlParseError / PddlSemanticError."""
    root = read_sexpr(text, filename)
    name = _check_define(root, "problem", filename)
    scope = Scope(filename, domain.predicate_index, domain.type_parent, dict(domain.constants),
                  functions=domain.function_index)
    objects: dict[str, str] = {}
    init: set[Atom] = set()
    numeric: dict[Atom, float] = {}
    prefs: list[GoalPreference] = []
    metric_node: SList | None = None
    goal = None
    domain_name = None
    constraint_parts = []
    for section in root.items[2:]:
        section = expect_list(section, scope, "a problem section")
        key = section.head()
        if key == ":domain":
            domain_name = expect_sym(section.items[-1], scope, "a domain name").text
            if domain_name != domain.name:
                raise PddlSemanticError(f"problem is for domain '{domain_name}', not", filename, section.line,
                                        domain.name)
        elif key == ":requirements":
            continue
        elif key == ":objects":
            for sym, typ in typed_list(section.items[1:], scope):
                if sym.text in objects:
                    raise scope.semantic_error("duplicate object", sym, sym.text)
                if sym.text not in scope.objects:  # re-listing a constant is harmless
                    objects[sym.text] = typ
            scope.objects = {**scope.objects, **objects}
        elif key == ":init":
            for node in section.items[1:]:
                node = expect_list(node, scope, "an initial fact")
                if node.head() == "=":
                    term, value = _numeric_fact(node, scope)
                    numeric[term] = value
                    continue
                if node.head() == "at" and len(node.items) == 3 and isinstance(node.items[2], SList):
                    raise scope.unsupported("timed initial literals are not supported", node, "at",
                                            ":timed-initial-literals")
                atom = parse_atom(node, scope)
                if any(a.startswith("?") for a in atom.args):
                    raise scope.semantic_error("variable in the initial state", node, str(node))
                init.add(atom)
        elif key == ":goal":
            if len(section.items) != 2:
                raise scope.parse_error("(:goal ...) takes one formula", section, ":goal")
            goal = _goal(section.items[1], scope, prefs)
        elif key == ":constraints":
            if len(section.items) != 2:
                raise scope.parse_error("(:constraints ...) takes one constraint", section, ":constraints")
            constraint_parts.append(section.items[1])
        elif key == ":metric":  # validity never depends on it; VAL prints its value ("Final value")
            if len(section.items) != 3 or getattr(section.items[1], "text", None) not in ("minimize", "maximize"):
                raise scope.parse_error("expected (:metric minimize|maximize EXPR)", section, ":metric")
            metric_node = section
        else:
            raise scope.parse_error("unknown or unsupported problem section", section, key or str(section)[:40])
    if goal is None:
        raise PddlParseError("problem has no goal", filename, root.line, ":goal")
    # parsed after all sections so a constraint may come before :objects or :goal
    parts = [parse_constraint(n, scope) for n in constraint_parts]
    if domain.constraints is not None:
        parts.insert(0, domain.constraints)
    constraints = None
    if parts:
        constraints = parts[0] if len(parts) == 1 else ConstraintAnd(tuple(parts))
    metric = None
    if metric_node is not None:  # after :objects and the preference names are known
        metric = Metric(metric_node.items[1].text, _metric_expr(metric_node.items[2], scope))
    return Problem(name, domain_name or domain.name, tuple(objects.items()), frozenset(init),
                   goal if goal is not None else And(()), constraints, filename, domain.constants,
                   tuple(prefs), tuple(numeric.items()), metric)


def load_problem(path: str | Path, domain: Domain) -> Problem:
    """Read and parse a problem file; errors name the path."""
    path = Path(path)
    return parse_problem(path.read_text(encoding="utf-8", errors="replace"), domain, str(path))
