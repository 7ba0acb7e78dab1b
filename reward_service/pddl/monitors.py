"""PDDL3 trajectory-constraint monitors, stepped over every visited state (the initial one included)."""

from __future__ import annotations

from dataclasses import dataclass

from reward_service.pddl.ground import Grounder, Prop, compile_prop, substitute
from reward_service.pddl.model import (
    Constraint,
    ConstraintAnd,
    ConstraintForall,
    ConstraintPreference,
    IgnoredConstraint,
    Modal,
)


@dataclass(frozen=True)
class GroundModal:
    """One ground modal constraint: its kind, propositional arguments and the text to report."""

    kind: str
    first: Prop
    second: Prop | None
    text: str

    def checkers(self):
        """Compiled `state -> bool` tests of the arguments (second is None for one-argument kinds)."""
        return compile_prop(self.first), None if self.second is None else compile_prop(self.second)


def ground_constraints(constraint: Constraint | None, grounder: Grounder) -> tuple[GroundModal, ...]:
    """Expand `and`/`forall` over the problem's objects into independent modal constraints.
    `or`/`not`/`imply` above modal operators are dropped: VAL never checks them (VAL_NOTES.md); so are
    preferences (soft, see ground_preferences)."""
    return tuple(m for name, m in _ground(constraint, grounder) if name is None)


def ground_preferences(constraint: Constraint | None, grounder: Grounder) -> tuple[tuple[str, GroundModal], ...]:
    """The ground modal constraints under `(preference NAME ...)`, each with its preference's name."""
    return tuple((name, m) for name, m in _ground(constraint, grounder) if name is not None)


def _ground(constraint: Constraint | None, grounder: Grounder) -> list[tuple[str | None, GroundModal]]:
    out: list[tuple[str | None, GroundModal]] = []

    def walk(c: Constraint, binding: dict[str, str], pref: str | None) -> None:
        if isinstance(c, ConstraintAnd):
            for a in c.args:
                walk(a, binding, pref)
        elif isinstance(c, ConstraintForall):
            for b in grounder.bindings(c.params, binding):
                walk(c.body, b, pref)
        elif isinstance(c, ConstraintPreference):
            walk(c.body, binding, c.name)
        elif isinstance(c, Modal):
            second = None if c.second is None else grounder.ground(c.second, binding)
            text = Modal(c.kind, substitute(c.first, binding),
                         None if c.second is None else substitute(c.second, binding))
            out.append((pref, GroundModal(c.kind, grounder.ground(c.first, binding), second, str(text))))
        elif not isinstance(c, IgnoredConstraint):
            raise TypeError(f"not a constraint: {c!r}")

    if constraint is not None:
        walk(constraint, {}, None)
    return out


class ConstraintMonitor:
    """Tracks every ground modal constraint over a trajectory.

    `observe(state, k)` is called for state k (0 = initial) and returns the first constraint that the
    trajectory so far has certainly violated; `finish()` returns one that the whole trajectory violates
    (sometime, sometime-after, at end). After a violation the trajectory is over, so there is no reset.
    """

    __slots__ = ("_modals", "_flags")

    def __init__(self, modals: tuple[tuple[GroundModal, object, object], ...]) -> None:
        """`modals`: (constraint, first checker, second checker) triples, see GroundModal.checkers."""
        self._modals = modals
        # per constraint: sometime -> seen; at-most-once -> 0 never/1 true/2 was true; sometime-before -> psi
        # seen; sometime-after -> pending requirement
        self._flags = [0] * len(modals)

    def observe(self, state: frozenset) -> GroundModal | None:
        flags = self._flags
        for i, (m, first, second) in enumerate(self._modals):
            kind = m.kind
            if kind == "always":
                if not first(state):
                    return m
            elif kind == "sometime":
                if not flags[i] and first(state):
                    flags[i] = 1
            elif kind == "at-most-once":
                now = first(state)
                if now and flags[i] == 2:
                    return m
                if now:
                    flags[i] = 1
                elif flags[i] == 1:
                    flags[i] = 2
            elif kind == "sometime-before":
                # strictly before: the trigger is checked before this state's psi counts
                if not flags[i] and first(state):
                    return m
                if not flags[i] and second(state):
                    flags[i] = 1
            elif kind == "sometime-after":
                if first(state):
                    flags[i] = 1
                if flags[i] and second(state):
                    flags[i] = 0
        return None

    def finish(self, final_state: frozenset) -> GroundModal | None:
        """The first constraint violated once the trajectory ends in `final_state` (already observed)."""
        for i, (m, first, _) in enumerate(self._modals):
            if m.kind == "sometime" and not self._flags[i]:
                return m
            if m.kind == "sometime-after" and self._flags[i]:  # a requirement still pending
                return m
            if m.kind == "at end" and not first(final_state):
                return m
        return None
