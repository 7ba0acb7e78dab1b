"""Domain parsing: `(define (domain ...) ...)` text -> a checked, immutable Domain."""

from __future__ import annotations

from pathlib import Path

from reward_service.pddl.errors import PddlParseError, PddlSemanticError
from reward_service.pddl.model import Action, And, ConstraintAnd, Domain, Effect, Param, Predicate
from reward_service.pddl.parse_formula import (
    Scope,
    expect_list,
    expect_sym,
    parse_constraint,
    parse_effect,
    parse_formula,
    parse_params,
    typed_list,
)
from reward_service.pddl.sexpr import SList, Sym, read_sexpr

SUPPORTED_REQUIREMENTS = frozenset({
    ":strips", ":typing", ":negative-preconditions", ":equality", ":constraints", ":conditional-effects",
    ":disjunctive-preconditions", ":existential-preconditions", ":universal-preconditions",
    ":quantified-preconditions", ":adl", ":action-costs", ":preferences",
})
# Requirements of valid PDDL that the native validator does not simulate: PddlUnsupportedError, so that
# `reward.validator: auto` hands such tasks to VAL (docs/validators.md, "Coverage").
UNSUPPORTED_REQUIREMENTS = frozenset({
    ":durative-actions", ":duration-inequalities", ":continuous-effects", ":fluents", ":numeric-fluents",
    ":object-fluents", ":derived-predicates", ":timed-initial-literals", ":time", ":processes", ":events",
})
# Sections that only those requirements bring, and the requirement each one names.
UNSUPPORTED_SECTIONS = {":durative-action": ":durative-actions", ":derived": ":derived-predicates",
                        ":process": ":time", ":event": ":time"}


def _check_define(root: SList, kind: str, filename: str) -> str:
    """The name in `(define (<kind> NAME) ...)`."""
    if root.head() != "define" or len(root.items) < 2 or not isinstance(root.items[1], SList):
        raise PddlParseError(f"expected (define ({kind} NAME) ...)", filename, root.line, root.head())
    header = root.items[1]
    if header.head() != kind or len(header.items) != 2 or not isinstance(header.items[1], Sym):
        raise PddlParseError(f"expected ({kind} NAME)", filename, header.line, str(header))
    return header.items[1].text


def _types(section: SList, scope: Scope) -> dict[str, str]:
    declared = typed_list(section.items[1:], scope, check_types=False)
    parents: dict[str, str] = {}
    for sym, parent in declared:
        if sym.text == "object":
            continue  # `object` may be declared; it stays the root
        parents[sym.text] = parent
    for sym, parent in declared:
        if parent.startswith("(either "):
            raise PddlSemanticError("a type cannot have an (either ...) parent", scope.filename, sym.line, parent)
        if parent != "object" and parent not in parents:
            parents[parent] = "object"  # a supertype used without its own entry is a type below object, as in VAL
    for start in parents:  # a cycle would make is_subtype loop; reject it here
        seen, t = set(), start
        while t != "object":
            if t in seen:
                raise PddlSemanticError("cyclic type hierarchy", scope.filename, section.line, start)
            seen.add(t)
            t = parents.get(t, "object")
    return parents


def _predicates(section: SList, scope: Scope) -> dict[str, Predicate]:
    preds: dict[str, Predicate] = {}
    for node in section.items[1:]:
        node = expect_list(node, scope, "a predicate declaration")
        name = expect_sym(node.items[0] if node.items else node, scope, "a predicate name")
        if name.text in preds:
            raise scope.semantic_error("duplicate predicate", name, name.text)
        params = parse_params(SList(node.items[1:], node.line), scope, allow_repeats=True)
        preds[name.text] = Predicate(name.text, params)
    return preds


def _functions(section: SList, scope: Scope) -> dict[str, Predicate]:
    """`(:functions (total-cost) - number (road-length ?a ?b - place) - number)`: names and parameters."""
    funcs: dict[str, Predicate] = {}
    items = section.items[1:]
    i = 0
    while i < len(items):
        node = items[i]
        if isinstance(node, Sym) and node.text == "-":  # the function type; only `number` is read natively
            kind = items[i + 1] if i + 1 < len(items) else node
            if not isinstance(kind, Sym) or kind.text != "number":
                raise scope.unsupported("object fluents are not supported", kind, str(kind), ":object-fluents")
            i += 2
            continue
        node = expect_list(node, scope, "a function declaration")
        name = expect_sym(node.items[0] if node.items else node, scope, "a function name")
        if name.text in funcs:
            raise scope.semantic_error("duplicate function", name, name.text)
        funcs[name.text] = Predicate(name.text, parse_params(SList(node.items[1:], node.line), scope,
                                                             allow_repeats=True))
        i += 1
    return funcs


def _action(section: SList, scope: Scope) -> Action:
    if len(section.items) < 2 or not isinstance(section.items[1], Sym):
        raise scope.parse_error("expected (:action NAME ...)", section, str(section)[:60])
    name = section.items[1].text
    fields: dict[str, object] = {}
    items = section.items[2:]
    if len(items) % 2:
        raise scope.parse_error("action keywords and values must come in pairs", section, name)
    for key, value in zip(items[::2], items[1::2], strict=True):
        key = expect_sym(key, scope, "an action keyword")
        if key.text not in (":parameters", ":precondition", ":effect"):
            raise scope.parse_error("unknown action keyword", key, key.text)
        fields[key.text] = value
    params: tuple[Param, ...] = ()
    if ":parameters" in fields:
        params = parse_params(fields[":parameters"], scope)
    inner = scope.bind(params)
    pre = parse_formula(fields[":precondition"], inner) if ":precondition" in fields else And(())
    eff = parse_effect(fields[":effect"], inner) if ":effect" in fields else Effect()
    return Action(name, params, pre, eff, section.line)


def parse_domain(text: str, filename: str = "<domain>") -> Domain:
    """Parse and check a domain; raise PddlParseError / PddlSemanticError naming file, line and symbol."""
    root = read_sexpr(text, filename)
    name = _check_define(root, "domain", filename)
    scope = Scope(filename, {}, {})
    requirements: set[str] = set()
    constants: dict[str, str] = {}
    actions: dict[str, Action] = {}
    constraint_nodes: list[SList] = []
    for section in root.items[2:]:
        section = expect_list(section, scope, "a domain section")
        key = section.head()
        if key == ":requirements":
            for req in section.items[1:]:
                req = expect_sym(req, scope, "a requirement")
                if req.text in UNSUPPORTED_REQUIREMENTS:
                    raise scope.unsupported("requirement not simulated by the native validator", req, req.text,
                                            req.text)
                if req.text not in SUPPORTED_REQUIREMENTS:
                    raise scope.semantic_error("unsupported requirement", req, req.text)
                requirements.add(req.text)
        elif key == ":types":
            scope.types = _types(section, scope)
        elif key == ":constants":
            for sym, typ in typed_list(section.items[1:], scope):
                if sym.text in constants:
                    raise scope.semantic_error("duplicate constant", sym, sym.text)
                constants[sym.text] = typ
            scope.objects = constants
        elif key == ":predicates":
            scope.predicates = _predicates(section, scope)
        elif key == ":action":
            action = _action(section, scope)
            if action.name in actions:
                raise scope.semantic_error("duplicate action", section, action.name)
            actions[action.name] = action
        elif key == ":constraints":
            if len(section.items) > 2:  # VAL: "Problem in domain definition!"; dropping them scored violations +1
                raise scope.parse_error("(:constraints ...) takes one constraint (join several with and)", section,
                                        ":constraints")
            constraint_nodes.append(section)
        elif key == ":functions":  # :action-costs; a numeric use other than total-cost is refused where it is
            scope.functions = _functions(section, scope)
        elif key in UNSUPPORTED_SECTIONS:
            raise scope.unsupported("section not simulated by the native validator", section, key,
                                    UNSUPPORTED_SECTIONS[key])
        else:
            raise scope.parse_error("unknown or unsupported domain section", section, key or str(section)[:40])
    constraints = None
    parts = [parse_constraint(n.items[1], scope) for n in constraint_nodes if len(n.items) == 2]
    if parts:
        constraints = parts[0] if len(parts) == 1 else ConstraintAnd(tuple(parts))
    return Domain(name, frozenset(requirements), tuple(scope.types.items()), tuple(constants.items()),
                  tuple(scope.predicates.values()), tuple(actions.values()), constraints, filename,
                  tuple(scope.functions.values()))


def load_domain(path: str | Path) -> Domain:
    """Read and parse a domain file; errors name the path."""
    path = Path(path)
    return parse_domain(path.read_text(encoding="utf-8", errors="replace"), str(path))
