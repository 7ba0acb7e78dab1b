"""Shared parsing of typed lists, formulas, effects and PDDL3 constraints, checked against a scope."""

from __future__ import annotations

from dataclasses import dataclass, field

from reward_service.pddl.errors import PddlParseError, PddlSemanticError, PddlUnsupportedError
from reward_service.pddl.model import (
    MODALITIES,
    And,
    Atom,
    Constraint,
    ConstraintAnd,
    ConstraintForall,
    ConstraintPreference,
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
    When,
)
from reward_service.pddl.sexpr import SExpr, SList, Sym


@dataclass
class Scope:
    """What a formula may mention: predicates, types, objects, and the variables bound around it."""

    filename: str
    predicates: dict[str, Predicate]
    types: dict[str, str]  # type -> parent
    objects: dict[str, str] = field(default_factory=dict)  # name -> type
    variables: dict[str, str] = field(default_factory=dict)  # "?x" -> type
    functions: dict[str, Predicate] = field(default_factory=dict)  # :action-costs functions

    def bind(self, params: tuple[Param, ...]) -> Scope:
        return Scope(self.filename, self.predicates, self.types, self.objects,
                     {**self.variables, **{p.name: p.type for p in params}}, self.functions)

    def parse_error(self, message: str, node: SExpr, symbol: str | None = None) -> PddlParseError:
        return PddlParseError(message, self.filename, node.line, symbol)

    def semantic_error(self, message: str, node: SExpr, symbol: str | None = None) -> PddlSemanticError:
        return PddlSemanticError(message, self.filename, node.line, symbol)

    def unsupported(self, message: str, node: SExpr, symbol: str | None, requirement: str) -> PddlUnsupportedError:
        return PddlUnsupportedError(message, self.filename, node.line, symbol, requirement)


def expect_list(node: SExpr, scope: Scope, what: str) -> SList:
    if not isinstance(node, SList):
        raise scope.parse_error(f"expected {what}, got a symbol", node, str(node))
    return node


def expect_sym(node: SExpr, scope: Scope, what: str) -> Sym:
    if not isinstance(node, Sym):
        raise scope.parse_error(f"expected {what}, got a list", node, str(node))
    return node


def typed_list(items: tuple[SExpr, ...], scope: Scope, check_types: bool = True) -> list[tuple[Sym, str]]:
    """`a b - t c` -> [(a, t), (b, t), (c, object)], each type checked to be declared."""
    out: list[tuple[Sym, str]] = []
    pending: list[Sym] = []
    i = 0
    while i < len(items):
        node = items[i]
        if isinstance(node, Sym) and node.text == "-":
            if i + 1 >= len(items) or not pending:
                raise scope.parse_error("dangling '-' in typed list", node, "-")
            type_node = items[i + 1]
            members = _type_names(type_node, scope)
            for member in members if check_types else ():
                if member.text not in scope.types and member.text != "object":
                    raise scope.semantic_error("unknown type", member, member.text)
            name = members[0].text if isinstance(type_node, Sym) else f"(either {' '.join(m.text for m in members)})"
            out.extend((s, name) for s in pending)
            pending = []
            i += 2
            continue
        pending.append(expect_sym(node, scope, "a name"))
        i += 1
    out.extend((s, "object") for s in pending)
    return out


def _type_names(node: SExpr, scope: Scope) -> list[Sym]:
    """The type after '-': one name, or the members of `(either a b ...)` (VAL reads both)."""
    if isinstance(node, Sym):
        return [node]
    if node.head() != "either" or len(node.items) < 2:
        raise scope.parse_error("expected a type name or (either TYPE ...)", node, str(node))
    return [expect_sym(m, scope, "a type name") for m in node.items[1:]]


def parse_params(node: SExpr, scope: Scope, allow_repeats: bool = False) -> tuple[Param, ...]:
    """A typed variable list; `allow_repeats` for predicate declarations, where VAL reads `(in ?obj ?obj)`."""
    params = typed_list(expect_list(node, scope, "a parameter list").items, scope)
    seen: set[str] = set()
    for sym, _ in params:
        if not sym.text.startswith("?"):
            raise scope.parse_error("parameter must start with '?'", sym, sym.text)
        if sym.text in seen and not allow_repeats:
            raise scope.semantic_error("duplicate parameter", sym, sym.text)
        seen.add(sym.text)
    return tuple(Param(s.text, t) for s, t in params)


def _term(node: SExpr, scope: Scope) -> str:
    sym = expect_sym(node, scope, "a term")
    if sym.text.startswith("?"):
        if sym.text not in scope.variables:
            raise scope.semantic_error("unbound variable", sym, sym.text)
    elif sym.text not in scope.objects:
        raise scope.semantic_error("unknown object", sym, sym.text)
    return sym.text


def parse_atom(node: SList, scope: Scope) -> Atom:
    name = expect_sym(node.items[0], scope, "a predicate name")
    pred = scope.predicates.get(name.text)
    if pred is None:
        raise scope.semantic_error("undeclared predicate", name, name.text)
    if len(node.items) - 1 != pred.arity:
        raise scope.semantic_error(f"predicate takes {pred.arity} arguments, got {len(node.items) - 1}:",
                                   node, name.text)
    return Atom(name.text, tuple(_term(a, scope) for a in node.items[1:]))


def _arity(node: SList, n: int, scope: Scope) -> None:
    if len(node.items) != n + 1:
        raise scope.parse_error(f"'{node.head()}' takes {n} arguments, got {len(node.items) - 1}:", node, str(node))


def parse_formula(node: SExpr, scope: Scope) -> Formula:
    """A goal description: atoms, =, not, and, or, imply, forall, exists."""
    node = expect_list(node, scope, "a formula")
    head = node.head()
    if head is None:
        if not node.items:  # `()` is the empty conjunction, as VAL reads it
            return And(())
        raise scope.parse_error("expected a formula keyword or predicate", node, str(node))
    if head == "and":
        return And(tuple(parse_formula(a, scope) for a in node.items[1:]))
    if head == "or":
        return Or(tuple(parse_formula(a, scope) for a in node.items[1:]))
    if head == "not":
        _arity(node, 1, scope)
        return Not(parse_formula(node.items[1], scope))
    if head == "imply":
        _arity(node, 2, scope)
        return Imply(parse_formula(node.items[1], scope), parse_formula(node.items[2], scope))
    if head in ("forall", "exists"):
        _arity(node, 2, scope)
        params = parse_params(node.items[1], scope)
        body = parse_formula(node.items[2], scope.bind(params))
        return Forall(params, body) if head == "forall" else Exists(params, body)
    if head == "=":
        _arity(node, 2, scope)
        if any(isinstance(a, SList) for a in node.items[1:]):
            raise scope.unsupported("numeric conditions are not supported", node, "=", ":numeric-fluents")
        return Equals(_term(node.items[1], scope), _term(node.items[2], scope))
    if head in ("<", ">", "<=", ">="):
        raise scope.unsupported("numeric conditions are not supported", node, head, ":numeric-fluents")
    return parse_atom(node, scope)


def parse_function_term(node: SList, scope: Scope) -> Atom:
    """`(f a ...)` of a declared :functions entry (objects or bound variables as arguments)."""
    name = expect_sym(node.items[0] if node.items else node, scope, "a function name")
    fn = scope.functions.get(name.text)
    if fn is None:
        raise scope.semantic_error("undeclared function", name, name.text)
    if len(node.items) - 1 != fn.arity:
        raise scope.semantic_error(f"function takes {fn.arity} arguments, got {len(node.items) - 1}:", node, name.text)
    return Atom(name.text, tuple(_term(a, scope) for a in node.items[1:]))


def _number(sym: Sym) -> float | None:
    try:
        return float(sym.text)
    except ValueError:
        return None


def _cost(n: SList, scope: Scope) -> float | Atom:
    """The X of `(increase (total-cost) X)` (:action-costs); any other numeric effect is :numeric-fluents."""
    target = n.items[1] if len(n.items) == 3 else None
    if n.head() != "increase" or not isinstance(target, SList) or target.head() != "total-cost" or len(target) != 1:
        raise scope.unsupported("numeric effects other than (increase (total-cost) X) are not supported", n,
                                n.head(), ":numeric-fluents")
    amount = n.items[2]
    if isinstance(amount, Sym) and (value := _number(amount)) is not None:
        return value
    if isinstance(amount, SList) and amount.head() in scope.functions and amount.head() != "total-cost":
        return parse_function_term(amount, scope)
    raise scope.unsupported("an action cost must be a number or a static function", amount, str(amount),
                            ":numeric-fluents")


def parse_effect(node: SExpr, scope: Scope) -> Effect:
    """A conjunctive effect with `not`, `when` and `forall`; nested `and`s are flattened."""
    adds: list[Atom] = []
    deletes: list[Atom] = []
    whens: list[When] = []
    foralls: list[ForallEffect] = []
    costs: list[float | Atom] = []

    def walk(n: SExpr) -> None:
        n = expect_list(n, scope, "an effect")
        head = n.head()
        if head is None and not n.items:
            return
        if head == "and":
            for a in n.items[1:]:
                walk(a)
        elif head == "not":
            _arity(n, 1, scope)
            deletes.append(parse_atom(expect_list(n.items[1], scope, "an atom"), scope))
        elif head == "when":
            _arity(n, 2, scope)
            inner = parse_effect(n.items[2], scope)
            if inner.costs:
                raise scope.unsupported("conditional action costs are not supported", n, "when", ":numeric-fluents")
            whens.append(When(parse_formula(n.items[1], scope), inner))
        elif head == "forall":
            _arity(n, 2, scope)
            params = parse_params(n.items[1], scope)
            foralls.append(ForallEffect(params, parse_effect(n.items[2], scope.bind(params))))
        elif head in ("increase", "decrease", "assign", "scale-up", "scale-down"):
            costs.append(_cost(n, scope))
        elif head == "at" and len(n.items) == 3 and isinstance(n.items[2], SList):  # (at start|end eff)
            raise scope.unsupported("timed effects are not supported", n, "at", ":durative-actions")
        else:
            adds.append(parse_atom(n, scope))

    walk(node)
    return Effect(tuple(adds), tuple(deletes), tuple(whens), tuple(foralls), tuple(costs))


_UNSUPPORTED_MODAL = ("within", "always-within", "hold-during", "hold-after", "exists")


def parse_constraint(node: SExpr, scope: Scope) -> Constraint:
    """A PDDL3 constraint: modal operators under `and`/`forall`; `or`/`not`/`imply` above them are kept
    as IgnoredConstraint because VAL never checks them; `exists` and timed operators are rejected."""
    node = expect_list(node, scope, "a constraint")
    head = node.head()
    if head == "and":
        return ConstraintAnd(tuple(parse_constraint(a, scope) for a in node.items[1:]))
    if head == "forall":
        _arity(node, 2, scope)
        params = parse_params(node.items[1], scope)
        return ConstraintForall(params, parse_constraint(node.items[2], scope.bind(params)))
    if head == "preference":  # (preference NAME c) or unnamed (preference c): soft, never changes validity
        if len(node.items) not in (2, 3):
            raise scope.parse_error("expected (preference NAME constraint)", node, str(node)[:60])
        name = expect_sym(node.items[1], scope, "a preference name").text if len(node.items) == 3 else ""
        return ConstraintPreference(name, parse_constraint(node.items[-1], scope))
    if head in ("or", "not", "imply"):
        for a in node.items[1:]:
            parse_constraint(a, scope)  # still checked, so typos fail early
        return IgnoredConstraint(str(node), node.line)
    if head == "at" and len(node.items) == 3 and getattr(node.items[1], "text", None) == "end":
        return Modal("at end", parse_formula(node.items[2], scope), None, node.line)
    if head in ("sometime-before", "sometime-after"):
        _arity(node, 2, scope)
        return Modal(head, parse_formula(node.items[1], scope), parse_formula(node.items[2], scope), node.line)
    if head in MODALITIES:
        _arity(node, 1, scope)
        return Modal(head, parse_formula(node.items[1], scope), None, node.line)
    if head in _UNSUPPORTED_MODAL:
        raise scope.semantic_error("unsupported trajectory constraint (VAL cannot check it)", node, head)
    raise scope.parse_error("expected a trajectory constraint", node, str(node))
