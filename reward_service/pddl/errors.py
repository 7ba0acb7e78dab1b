"""The PDDL exception family: every message names the file, the line and the offending symbol."""

from __future__ import annotations


class PddlError(Exception):
    """Base of all PDDL errors; `str(err)` reads "FILE:LINE: message 'symbol'"."""

    def __init__(self, message: str, filename: str = "<pddl>", line: int = 0, symbol: str | None = None) -> None:
        self.message = message
        self.filename = filename
        self.line = line
        self.symbol = symbol
        text = f"{filename}:{line}: {message}"
        if symbol is not None:
            text += f" '{symbol}'"
        super().__init__(text)

    def __reduce__(self):  # keep the attributes when the error crosses a process boundary
        return (type(self), (self.message, self.filename, self.line, self.symbol))


class PddlLeniencyWarning(UserWarning):
    """Text VAL reads that the strict grammar would refuse, accepted as VAL reads it ("FILE:LINE: what")."""


class PddlParseError(PddlError):
    """The text is not well-formed PDDL: unbalanced parentheses, a missing section, a bad token."""


class PddlSemanticError(PddlError):
    """Well-formed text that makes no sense: an undeclared predicate or type, a wrong arity, a duplicate."""


class PddlUnsupportedError(PddlSemanticError):
    """Valid PDDL using a feature the native validator does not simulate (VAL may still read it).

    `requirement` names the PDDL requirement behind the feature (":durative-actions", ":numeric-fluents",
    ":derived-predicates", ":timed-initial-literals", ...), so the pre-flight can say which one and route
    the task to VAL under `reward.validator: auto`.
    """

    def __init__(self, message: str, filename: str = "<pddl>", line: int = 0, symbol: str | None = None,
                 requirement: str = "") -> None:
        super().__init__(message, filename, line, symbol)
        self.requirement = requirement

    def __reduce__(self):
        return (type(self), (self.message, self.filename, self.line, self.symbol, self.requirement))
