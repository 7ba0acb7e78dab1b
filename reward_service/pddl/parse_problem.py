"""Problem parsing: `(define (problem ...) ...)` text -> a checked, immutable Problem for a given Domain."""

from __future__ import annotations

from pathlib import Path

from reward_service.pddl.errors import PddlParseError, PddlSemanticError
from reward_service.pddl.model import And, Atom, ConstraintAnd, Domain, Problem
from reward_service.pddl.parse_domain import _check_define
from reward_service.pddl.parse_formula import (
    Scope,
    expect_list,
    expect_sym,
    parse_atom,
    parse_constraint,
    parse_formula,
    typed_list,
)
from reward_service.pddl.sexpr import read_sexpr


def parse_problem(text: str, domain: Domain, filename: str = "<problem>") -> Problem:
    """Parse and check a problem against `domain`; raise PddlParseError / PddlSemanticError."""
    root = read_sexpr(text, filename)
    name = _check_define(root, "problem", filename)
    scope = Scope(filename, domain.predicate_index, domain.type_parent, dict(domain.constants))
    objects: dict[str, str] = {}
    init: set[Atom] = set()
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
                    raise scope.semantic_error("numeric fluents are not supported", node, "=")
                atom = parse_atom(node, scope)
                if any(a.startswith("?") for a in atom.args):
                    raise scope.semantic_error("variable in the initial state", node, str(node))
                init.add(atom)
        elif key == ":goal":
            if len(section.items) != 2:
                raise scope.parse_error("(:goal ...) takes one formula", section, ":goal")
            goal = parse_formula(section.items[1], scope)
        elif key == ":constraints":
            if len(section.items) != 2:
                raise scope.parse_error("(:constraints ...) takes one constraint", section, ":constraints")
            constraint_parts.append(section.items[1])
        elif key == ":metric":
            continue  # plans are judged on validity only
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
    return Problem(name, domain_name or domain.name, tuple(objects.items()), frozenset(init),
                   goal if goal is not None else And(()), constraints, filename, domain.constants)


def load_problem(path: str | Path, domain: Domain) -> Problem:
    """Read and parse a problem file; errors name the path."""
    path = Path(path)
    return parse_problem(path.read_text(encoding="utf-8", errors="replace"), domain, str(path))
