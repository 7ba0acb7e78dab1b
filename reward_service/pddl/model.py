"""The immutable PDDL model: formulas, effects, trajectory constraints, actions, domains and problems."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from reward_service.pddl.errors import PddlSemanticError

# ---- formulas (arguments are "?var" variables or object names) ---------------------------------------


@dataclass(frozen=True)
class Param:
    """A typed variable `?x - type` of an action, quantifier or predicate."""

    name: str
    type: str = "object"


@dataclass(frozen=True)
class Atom:
    """`(predicate arg ...)`."""

    predicate: str
    args: tuple[str, ...]

    def __str__(self) -> str:
        return "(" + " ".join((self.predicate, *self.args)) + ")"


@dataclass(frozen=True)
class Equals:
    """`(= a b)`, available with :equality."""

    left: str
    right: str

    def __str__(self) -> str:
        return f"(= {self.left} {self.right})"


@dataclass(frozen=True)
class Not:
    arg: Formula

    def __str__(self) -> str:
        return f"(not {self.arg})"


@dataclass(frozen=True)
class And:
    args: tuple[Formula, ...]

    def __str__(self) -> str:
        return "(and " + " ".join(map(str, self.args)) + ")"


@dataclass(frozen=True)
class Or:
    args: tuple[Formula, ...]

    def __str__(self) -> str:
        return "(or " + " ".join(map(str, self.args)) + ")"


@dataclass(frozen=True)
class Imply:
    left: Formula
    right: Formula

    def __str__(self) -> str:
        return f"(imply {self.left} {self.right})"


def either_members(type_name: str) -> tuple[str, ...]:
    """The member types of `(either a b)`, or the one type of a plain type name."""
    if type_name.startswith("(either "):
        return tuple(type_name[len("(either "):-1].split())
    return (type_name,)


def _params_text(params: tuple[Param, ...]) -> str:
    return " ".join(f"{p.name} - {p.type}" for p in params)


@dataclass(frozen=True)
class Forall:
    params: tuple[Param, ...]
    body: Formula

    def __str__(self) -> str:
        return f"(forall ({_params_text(self.params)}) {self.body})"


@dataclass(frozen=True)
class Exists:
    params: tuple[Param, ...]
    body: Formula

    def __str__(self) -> str:
        return f"(exists ({_params_text(self.params)}) {self.body})"


Formula = Atom | Equals | Not | And | Or | Imply | Forall | Exists

# ---- effects -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    """A conjunctive effect: unconditional adds and deletes, `when` and `forall` parts."""

    adds: tuple[Atom, ...] = ()
    deletes: tuple[Atom, ...] = ()
    whens: tuple[When, ...] = ()
    foralls: tuple[ForallEffect, ...] = ()
    # :action-costs: `(increase (total-cost) X)`, X a number or a static function term (an Atom of a function)
    costs: tuple[float | Atom, ...] = ()


@dataclass(frozen=True)
class When:
    """`(when condition effect)`: the condition is evaluated in the state before the action."""

    condition: Formula
    effect: Effect


@dataclass(frozen=True)
class ForallEffect:
    params: tuple[Param, ...]
    effect: Effect


# ---- PDDL3 trajectory constraints --------------------------------------------------------------------

MODALITIES = ("always", "sometime", "at-most-once", "sometime-before", "sometime-after", "at end")


@dataclass(frozen=True)
class Modal:
    """One modal constraint: `kind` is one of MODALITIES; `second` is set for sometime-before/after."""

    kind: str
    first: Formula
    second: Formula | None = None
    line: int = 0

    def __str__(self) -> str:
        parts = (self.first,) if self.second is None else (self.first, self.second)
        return f"({self.kind} " + " ".join(map(str, parts)) + ")"


@dataclass(frozen=True)
class ConstraintAnd:
    args: tuple[Constraint, ...]

    def __str__(self) -> str:
        return "(and " + " ".join(map(str, self.args)) + ")"


@dataclass(frozen=True)
class ConstraintForall:
    params: tuple[Param, ...]
    body: Constraint

    def __str__(self) -> str:
        return f"(forall ({_params_text(self.params)}) {self.body})"


@dataclass(frozen=True)
class IgnoredConstraint:
    """`or`/`not`/`imply` over modal operators: VAL accepts and never checks them (VAL_NOTES.md)."""

    text: str
    line: int = 0

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class ConstraintPreference:
    """`(preference NAME c)`: a soft constraint; it never changes validity, only the metric's is-violated."""

    name: str
    body: Constraint

    def __str__(self) -> str:
        return f"(preference {self.name} {self.body})"


Constraint = Modal | ConstraintAnd | ConstraintForall | IgnoredConstraint | ConstraintPreference


@dataclass(frozen=True)
class GoalPreference:
    """`(preference NAME f)` in the goal (under `forall` when `params` are set): soft, checked in the final state."""

    name: str
    formula: Formula
    params: tuple[Param, ...] = ()


# A metric expression as nested tuples: ("num", 3.0) | ("fn", Atom) | ("is-violated", name) | ("total-time",)
# | (op, expr, ...) with op one of + - * /.
MetricExpr = tuple


@dataclass(frozen=True)
class Metric:
    """`(:metric minimize|maximize EXPR)`; the plan's value is what VAL prints as "Final value"."""

    direction: str
    expr: MetricExpr

# ---- domains and problems ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Predicate:
    name: str
    params: tuple[Param, ...]

    @property
    def arity(self) -> int:
        return len(self.params)


@dataclass(frozen=True)
class Action:
    name: str
    params: tuple[Param, ...]
    precondition: Formula
    effect: Effect
    line: int = 0

    @property
    def arity(self) -> int:
        return len(self.params)


@dataclass(frozen=True)
class Domain:
    """A parsed domain. `types` maps each declared type to its parent (`object` is the root)."""

    name: str
    requirements: frozenset[str]
    types: tuple[tuple[str, str], ...]
    constants: tuple[tuple[str, str], ...]
    predicates: tuple[Predicate, ...]
    actions: tuple[Action, ...]
    constraints: Constraint | None = None
    filename: str = "<domain>"
    functions: tuple[Predicate, ...] = ()  # :action-costs functions, e.g. (total-cost), (road-length ?a ?b)

    @cached_property
    def action_index(self) -> dict[str, Action]:
        return {a.name: a for a in self.actions}

    @cached_property
    def predicate_index(self) -> dict[str, Predicate]:
        return {p.name: p for p in self.predicates}

    @cached_property
    def type_parent(self) -> dict[str, str]:
        return dict(self.types)

    @cached_property
    def function_index(self) -> dict[str, Predicate]:
        return {f.name: f for f in self.functions}

    def is_subtype(self, sub: str, sup: str) -> bool:
        """Whether type `sub` is `sup` or below it; `(either a b)` as `sup` is any of a, b, as `sub` any of them."""
        if sup == "object":
            return True
        if sub.startswith("(either ") or sup.startswith("(either "):
            return any(self.is_subtype(s, t) for s in either_members(sub) for t in either_members(sup))
        seen: set[str] = set()
        while sub not in seen:
            if sub == sup:
                return True
            seen.add(sub)
            sub = self.type_parent.get(sub, "object")
        return False


@dataclass(frozen=True)
class Problem:
    """A parsed problem. `objects` excludes the domain's constants; `all_objects` has both."""

    name: str
    domain_name: str
    objects: tuple[tuple[str, str], ...]
    init: frozenset[Atom]
    goal: Formula
    constraints: Constraint | None = None
    filename: str = "<problem>"
    constants: tuple[tuple[str, str], ...] = ()
    preferences: tuple[GoalPreference, ...] = ()  # soft goals, left out of `goal`
    numeric_init: tuple[tuple[Atom, float], ...] = ()  # `(= (f a b) 3)` of the :action-costs functions
    metric: Metric | None = None
    # `init` in declaration order, for printing only (reward_service.pddl.printer); () = unordered (sorted)
    init_order: tuple[Atom, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.init_order and (len(self.init_order) != len(self.init) or set(self.init_order) != self.init):
            raise PddlSemanticError("init_order must list every atom of init exactly once", self.filename, 0,
                                    self.name)

    @cached_property
    def all_objects(self) -> dict[str, str]:
        return {**dict(self.constants), **dict(self.objects)}
