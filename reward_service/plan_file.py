"""Plan-file reader: VAL's sequential plan formats into a `Plan`, with line numbers and exact errors.

Accepted, as VAL's plan grammar accepts them (token based, so line breaks do not matter):

    (pick-up a)                 ; a bare step, `;` starts a comment to the end of the line
    0: (PICK-UP A) [1]          ; a timestamp prefix and a duration suffix, both dropped
    (pick-up a) (stack a b)     ; several steps on one line, or one step over several lines

Names are lower-cased (PDDL is case-insensitive, VAL lower-cases too).

Deliberately stricter than VAL (docs/validators.md lists these):
- VAL silently stops reading at the first token it cannot parse and validates the steps before it;
  we raise `PlanFormatError` naming the file and line instead.
- Timestamps must be given on every step or on none, and must strictly increase: VAL sorts steps by
  timestamp and runs equal timestamps as one concurrent happening, which a sequential plan never means.
- A plan over `max_bytes` (default 1 MB) or with a NUL byte is refused before it is read, so a 10 MB
  or binary input costs bounded time.
"""

from __future__ import annotations

import re
from pathlib import Path

from reward_service.result import Plan, PlanStep

MAX_PLAN_BYTES = 1_000_000

_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\f\v]+)
  | (?P<newline>\n)
  | (?P<comment>;[^\n]*)
  | (?P<number>[0-9]+(?:\.[0-9]*)?(?=\s*:))   # a timestamp is a number followed by ':'
  | (?P<colon>:)
  | (?P<lpar>\()
  | (?P<rpar>\))
  | (?P<duration>\[[ \t]*[0-9]+(?:\.[0-9]*)?[ \t]*\])
  | (?P<name>[A-Za-z0-9_][A-Za-z0-9_\-]*)
  | (?P<other>[^\n])   # anything else, one character: no character is skipped unread (U+00A0, U+2028, \x1c)
    """,
    re.VERBOSE,
)


class PlanFormatError(ValueError):
    """A plan text that is not a sequential plan; the message names the file and line."""

    def __init__(self, filename: str, line: int, reason: str) -> None:
        super().__init__(f"{filename}:{line}: {reason}")
        self.filename = filename
        self.line = line
        self.reason = reason


def _tokens(text: str):
    """Yield (kind, value, line) for each meaningful token; whitespace and comments are skipped."""
    line = 1
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "newline":
            line += 1
        elif kind not in ("space", "comment"):
            yield kind, m.group(), line


def _describe(kind: str, value: str) -> str:
    return "end of text" if kind == "eof" else repr(value[:40])


def parse_plan_text(text: str, filename: str = "<plan>", max_bytes: int = MAX_PLAN_BYTES) -> Plan:
    """Read a sequential plan in VAL's formats; raise PlanFormatError at the first unreadable token."""
    # Every character is at least one byte, so only a text under the limit needs encoding to measure.
    size = len(text) if len(text) > max_bytes else len(text.encode("utf-8", errors="replace"))
    if size > max_bytes:
        raise PlanFormatError(filename, 1, f"plan is {size} bytes, over the {max_bytes}-byte limit")
    nul = text.find("\0")
    if nul >= 0:
        raise PlanFormatError(filename, text.count("\n", 0, nul) + 1, "binary data (NUL byte) in plan text")

    toks = list(_tokens(text))
    toks.append(("eof", "", text.count("\n") + 1))
    pos = 0

    def take(kinds: tuple[str, ...], what: str) -> tuple[str, str, int]:
        nonlocal pos
        kind, value, line = toks[pos]
        if kind not in kinds:
            raise PlanFormatError(filename, line, f"expected {what}, found {_describe(kind, value)}")
        pos += 1
        return kind, value, line

    steps: list[PlanStep] = []
    stamps: list[float] = []
    while toks[pos][0] != "eof":
        stamp: float | None = None
        if toks[pos][0] == "number":
            stamp = float(take(("number",), "a timestamp")[1])
            take(("colon",), "':' after the timestamp")
        _, _, line = take(("lpar",), "'(' to start a step")
        name = take(("name",), "an action name after '('")[1]
        args: list[str] = []
        while take(("name", "rpar"), "an object name or ')'")[0] == "name":
            args.append(toks[pos - 1][1].lower())
        _check_stamp(stamp, stamps, len(steps), filename, line)
        steps.append(PlanStep(name=name.lower(), args=tuple(args), line=line))
        if toks[pos][0] == "duration":
            pos += 1
    return Plan(steps=tuple(steps))


def _check_stamp(stamp: float | None, stamps: list[float], n_steps: int, filename: str, line: int) -> None:
    """All steps timestamped or none, and strictly increasing (see the module docstring)."""
    if n_steps > 0 and (stamp is None) != (len(stamps) == 0):
        raise PlanFormatError(filename, line, "plan mixes timestamped and untimed steps")
    if stamp is None:
        return
    if stamps and stamp <= stamps[-1]:
        raise PlanFormatError(
            filename,
            line,
            f"timestamp {stamp:g} is not after the previous step's {stamps[-1]:g} "
            "(VAL would reorder them or run them as one concurrent happening)",
        )
    stamps.append(stamp)


def read_plan_file(path: str | Path, max_bytes: int = MAX_PLAN_BYTES) -> Plan:
    """Read a plan file (size checked before reading); errors name the path given."""
    p = Path(path)
    size = p.stat().st_size
    if size > max_bytes:
        raise PlanFormatError(str(path), 1, f"plan is {size} bytes, over the {max_bytes}-byte limit")
    text = p.read_bytes().decode("utf-8", errors="replace")
    return parse_plan_text(text, filename=str(path), max_bytes=max_bytes)
