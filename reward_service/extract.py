"""PlanExtractor: from raw model text (chat transcripts, <think>, fences, prose) to a Plan, reporting every line.

Rules (DESIGN.md "Plan extraction"): take the assistant part of a chat transcript (ChatML, Llama-3 headers,
Mistral `[INST]`, a plain "assistant" line); drop special tokens and `<think>...</think>`; if `<plan>` tags are
present use the last tagged part; then the plan is the last block of plan lines. A plan line is one that
starts (after an optional `N:` / `N.` / `Step N:` / `-` prefix) with `(`. A well-formed one holds one or more
`(name arg ...)` steps, each with an optional `N:` timestamp before and `[d]` duration after, then an optional
`;` comment; a step may span lines, as in VAL's plan files. Whitespace inside the parentheses is normalised
(`( pickup a )` -> `(pickup a)`), names are lower-cased. Blank and comment lines do not break a block; any
other line does. `(NO-PLAN)` alone is an empty plan.

One grammar, read in one pass: every line is tokenised by `_TOKEN` (ASCII only, nothing case-insensitive
but the ASCII words `step`, `think`, `plan`, `assistant`) and parsed by `_LineParser`; there is no second
pattern that must agree with it. A plan line that does not parse (a non-ASCII or stray character inside a
step, a step cut off by the end of the text) anywhere in the kept block makes the completion
plan_format_error: a plan is never read shorter than it was written. Every line of the completion gets a
`LineFate` in `Extraction.line_fates`, so nothing is dropped unreported.

Where this is stricter than VAL (documented in docs/rewards.md): VAL stops reading a plan at the first token
it cannot parse and silently validates the prefix.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from reward_service.result import Label, Plan, PlanStep

_A = re.ASCII  # every pattern: \s, \w and IGNORECASE over ASCII only (U+212A is not "k", U+0130 is not "i")
# Assistant-turn openers, most specific first; the text after the LAST one is the answer.
_ASSISTANT_OPENERS = (
    re.compile(r"<\|im_start\|>[ \t]*assistant\b[^\n]*\n?", _A),  # ChatML (Qwen)
    re.compile(r"<\|start_header_id\|>[ \t]*assistant[ \t]*<\|end_header_id\|>\s*", _A),  # Llama-3
    re.compile(r"\[/INST\]", _A),  # Mistral / Llama-2
    re.compile(r"<\|assistant\|>\s*", _A),  # Phi / Zephyr
    re.compile(r"(?im)^[ \t]*(?:#+[ \t]*)?assistant[ \t]*:?[ \t]*$\n?", _A),  # plain "assistant" line
    re.compile(r"(?im)^[ \t]*assistant[ \t]*:[ \t]*", _A),  # "Assistant: ..." on one line
)
_END_OF_TURN = re.compile(r"<\|im_end\|>|<\|eot_id\|>|<\|end_of_text\|>|<\|endoftext\|>|<\|end\|>|</s>", _A)
_SPECIAL_TOKEN = re.compile(r"<\|[A-Za-z0-9_]+\|>|</?s>|\[/?INST\]", _A)
_THINK_TAG = re.compile(r"<(/?)think>", re.IGNORECASE | _A)
_PLAN_TAG = re.compile(r"<(/?)plan>", re.IGNORECASE | _A)
_FENCE = re.compile(r"[ \t]*```", _A)
_TRAILING_KEEP = 200  # characters of text-after-the-block kept for the debug log

# The one token grammar of plan text (the same name and duration rules as plan_file._TOKEN).
_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\f\v]+)
  | (?P<nl>\n)
  | (?P<comment>;[^\n]*)
  | (?P<lpar>\()
  | (?P<rpar>\))
  | (?P<duration>\[[ \t]*[0-9]+(?:\.[0-9]*)?[ \t]*\])
  | (?P<name>[A-Za-z0-9_][A-Za-z0-9_\-]*)
  | (?P<other>[^\n])
    """,
    re.VERBOSE | _A,
)


class LineFate(str, enum.Enum):
    """What extraction did with one line of the completion text."""

    KEPT = "kept"  # a plan line whose steps are in the plan
    BROKEN = "broken"  # a plan line in the kept block that does not parse: the completion is plan_format_error
    BLANK = "blank"  # whitespace only
    COMMENT = "comment"  # a `;` comment line
    BEFORE = "before"  # dropped: prose, fences, earlier drafts before the kept block (or before <plan>)
    AFTER = "after"  # dropped: text after the kept block (or after </plan>)
    OUTSIDE = "outside"  # not part of the answer: prompt turns, special tokens, <think>, the <plan> tags


@dataclass(frozen=True)
class Extraction:
    """The plan found in one completion, its label when decided here, and what was done with every line."""

    plan: Plan
    label: Label | None = None  # None: the plan goes to a validator; else plan_format_error / empty_plan
    reason: str | None = None  # why the label was decided here
    dropped_lines: int = 0  # lines with fate BEFORE, fences not counted (prose, earlier drafts)
    trailing_text: str = ""  # text after the kept block, truncated to 200 characters
    think_chars: int = 0  # characters of <think> reasoning removed
    line_fates: tuple[LineFate, ...] = ()  # one per line of the completion (split on "\n"); () over the size cap

    def dropped(self) -> dict[str, int | str]:
        """What extraction threw away, as the debug log and CLI JSON show it."""
        return {"lines_before": self.dropped_lines, "after": self.trailing_text, "think_chars": self.think_chars}

    def lines_with(self, *fates: LineFate) -> list[int]:
        """The 1-based numbers of the lines that got one of `fates`."""
        return [i + 1 for i, fate in enumerate(self.line_fates) if fate in fates]


def _blank_out(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with each span replaced by the newlines it held: line numbers stay those of `text`."""
    parts, at = [], 0
    for start, end in sorted(spans):
        start = max(start, at)
        if start >= end:
            continue
        parts.append(text[at:start])
        parts.append("\n" * text.count("\n", start, end))
        at = end
    parts.append(text[at:])
    return "".join(parts)


def _answer_spans(text: str) -> list[tuple[int, int]]:
    """Spans of `text` outside the assistant's answer: before its opener, after its end of turn, special tokens."""
    start = 0
    for opener in _ASSISTANT_OPENERS:
        last = None
        for last in opener.finditer(text):  # noqa: B007  # keep the last match
            pass
        if last is not None:
            start = last.end()
            break
    spans = [(0, start)] if start else []
    end = _END_OF_TURN.search(text, start)
    stop = end.start() if end is not None else len(text)
    if end is not None:
        spans.append((stop, len(text)))
    spans.extend(m.span() for m in _SPECIAL_TOKEN.finditer(text, start, stop))
    return spans


def _tag_pairs(text: str, tag: re.Pattern[str]) -> tuple[list[tuple[int, int]], list[int], int | None]:
    """One scan over `<x>`/`</x>` tags: (open, close-end) pairs, as a non-greedy `<x>.*?</x>` finds them, the
    ends of unpaired closes, and the start of a trailing unclosed open (None if every open is closed)."""
    pairs: list[tuple[int, int]] = []
    stray_closes: list[int] = []
    open_at: int | None = None
    for m in tag.finditer(text):
        if not m.group(1):  # an open
            if open_at is None:
                open_at = m.start()
        elif open_at is not None:
            pairs.append((open_at, m.end()))
            open_at = None
        else:
            stray_closes.append(m.end())
    return pairs, stray_closes, open_at


def _think_spans(text: str) -> list[tuple[int, int]]:
    """Linear-time: every `<think>...</think>`; all before a stray `</think>`; all after an unclosed `<think>`."""
    pairs, stray_closes, open_at = _tag_pairs(text, _THINK_TAG)
    spans = list(pairs)
    if stray_closes:  # the opening tag was in the prompt (Qwen3 templates): all before the last close is thinking
        spans.append((0, stray_closes[-1]))
    if open_at is not None:  # never closed: the answer never came
        spans.append((open_at, len(text)))
    return spans


def _covered(spans: list[tuple[int, int]]) -> int:
    """Characters covered by the union of `spans`."""
    total, at = 0, 0
    for start, end in sorted(spans):
        start = max(start, at)
        if end > start:
            total += end - start
            at = end
    return total


def assistant_segment(text: str) -> str:
    """The answer part of `text`: after the last assistant opener, up to the end of that turn, special tokens out."""
    return _blank_out(text, _answer_spans(text)).strip("\n")


def strip_thinking(text: str) -> tuple[str, int]:
    """Remove `<think>...</think>`; returns the rest and the number of characters removed."""
    spans = _think_spans(text)
    return _blank_out(text, spans), _covered(spans)



@dataclass
class _Unit:
    """One logical line of plan text: one physical line, or several when a step spans lines."""

    kind: str  # "blank" | "comment" | "steps" | "broken" | "other"
    first: int  # 0-based physical lines, inclusive
    last: int
    steps: tuple[PlanStep, ...] = ()
    reason: str = ""


class _Broken(Exception):
    """A plan line that does not parse; `line` is the 0-based line of the offending token."""

    def __init__(self, line: int, message: str, in_step: bool = False) -> None:
        super().__init__(message)
        self.line = line
        self.in_step = in_step  # the error is inside a step's parentheses (its `)` may be on a later line)


def _closes(rest: str) -> bool:
    """Whether the rest of a line, read from inside an open step, leaves no step open: `(/x) (b` does not,
    its `(b` continues on the next line (parentheses in a `;` comment do not count)."""
    depth = 1
    for m in _TOKEN.finditer(rest):
        kind = m.lastgroup
        if kind == "comment":
            break
        if kind == "lpar":
            depth += 1
        elif kind == "rpar":
            depth = max(depth - 1, 0)
    return depth == 0


def _step_tail(line: str) -> bool:
    """Whether a line that is not a plan line is the tail of a step (`   b c)`): plan tokens only (names,
    parentheses, durations, a comment) with a `)` that closes nothing on the line. Prose (`Done.`, `:)`) holds
    other characters; a tail read as prose would cut the plan line above it off the kept block."""
    depth = 0
    for m in _TOKEN.finditer(line):
        kind = m.lastgroup
        if kind == "comment":
            break
        if kind == "other":
            return False
        if kind == "lpar":
            depth += 1
        elif kind == "rpar":
            depth -= 1
            if depth < 0:
                return True
    return False


class _LineParser:
    """Reads text into `_Unit`s: one recursive-descent pass over `_TOKEN`s, linear in the text's length."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 0  # 0-based physical line of self.pos; one past the last line once the end is taken
        self.lines = text.count("\n") + 1

    def _peek(self) -> tuple[str, str]:
        """The next token that is not horizontal whitespace, not consumed; ("eof", "") at the end."""
        m = _TOKEN.match(self.text, self.pos)
        if m is not None and m.lastgroup == "ws":
            self.pos = m.end()
            m = _TOKEN.match(self.text, self.pos)
        if m is None:
            return "eof", ""
        return m.lastgroup or "other", m.group()

    def _take(self) -> tuple[str, str]:
        kind, value = self._peek()
        self.pos += len(value)
        self.line += kind in ("nl", "eof")  # the end counts as the last line's end
        return kind, value

    def _to_line_end(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end + 1
        self.line += 1

    def units(self) -> list[_Unit]:
        """Every logical line of the text, in order, covering each physical line once."""
        out: list[_Unit] = []
        while self.line < self.lines:
            out.append(self._unit())
        return out

    def _unit(self) -> _Unit:
        first = self.line
        kind, _ = self._peek()
        if kind in ("nl", "eof"):
            self._take()
            return _Unit("blank", first, first)
        if kind == "comment":
            self._take()
            self._take()  # its newline, or the end
            return _Unit("comment", first, first)
        start = self.pos
        if not self._prefix():
            self._to_line_end()
            line = self.text[start : self.pos].rstrip("\n")
            if _step_tail(line):
                return _Unit("broken", first, first, reason="a ')' with no '(' before it: the tail of a step")
            return _Unit("other", first, first)
        try:
            steps = self._steps()
        except _Broken as broken:
            self._recover(broken)
            where = f" on line {broken.line + 1}" if broken.line != first else ""
            return _Unit("broken", first, self.line - 1, reason=f"{broken}{where}")
        return _Unit("steps", first, self.line - 1, steps)

    def _recover(self, broken: _Broken) -> None:
        """Skip a broken plan line: the rest of its line and, if a step was left open, the lines that continue
        it (names and comments only, up to its `)`), so the tail of a broken step is never read as prose."""
        self.line = broken.line
        end = self.text.find("\n", self.pos)
        rest = self.text[self.pos : len(self.text) if end < 0 else end]
        self._to_line_end()
        if not broken.in_step or _closes(rest):
            return
        while self.line < self.lines:
            start, line = self.pos, self.line
            kind, _ = self._take()
            while kind in ("name", "comment"):
                kind, _ = self._take()
            if kind == "rpar":
                self._to_line_end()
                return
            if kind not in ("nl", "eof"):  # not a continuation of the step: leave the line to the next unit
                self.pos, self.line = start, line
                return

    def _number(self) -> bool:
        """Consume a number (`3`, `0.5`) if one is next."""
        kind, value = self._peek()
        if not (kind == "name" and value.isdigit()):
            return False
        self._take()
        dot = _TOKEN.match(self.text, self.pos)
        digits = _TOKEN.match(self.text, self.pos + 1) if dot is not None and dot.group() == "." else None
        if digits is not None and digits.lastgroup == "name" and digits.group().isdigit():
            self.pos = digits.end()  # `0.5`; a `.` without digits is left (it ends `1.`)
        return True

    def _prefix(self) -> bool:
        """Consume an optional list prefix; True when a `(` follows (a plan line), False for prose."""
        kind, value = self._peek()
        if kind == "name" and value.lower() == "step":  # names are ASCII: no U+017F "ſtep"
            self._take()
            if self._peek()[0] != "name":
                return False
            kind, value = self._peek()
        if kind == "name":
            if not self._number():
                return False
            kind, value = self._peek()
            if not (value in (":", ".") or kind == "rpar"):
                return False
            self._take()
        elif value in ("-", "*"):
            self._take()
            after = _TOKEN.match(self.text, self.pos)
            if after is None or after.lastgroup != "ws":
                return False
        return self._peek()[0] == "lpar"

    def _steps(self) -> tuple[PlanStep, ...]:
        steps = [self._step()]
        while True:
            kind, value = self._peek()
            if kind == "duration":
                self._take()
                kind, value = self._peek()
            if kind == "comment":
                self._take()
                kind, value = self._peek()
            if kind in ("nl", "eof"):
                self._take()
                return tuple(steps)
            if self._number():  # a timestamp before the next step: `0: (a) 1: (b)`
                kind, value = self._peek()
                if value != ":":
                    raise _Broken(self.line, f"expected ':' after a timestamp, found {value[:40]!r}")
                self._take()
                kind, value = self._peek()
            if kind != "lpar":
                raise _Broken(self.line, f"expected '(' or the end of the line, found {value[:40]!r}")
            steps.append(self._step())

    def _step(self) -> PlanStep:
        line = self.line
        self._take()  # the "("
        words: list[str] = []
        while True:
            kind, value = self._peek()
            if kind == "eof":
                raise _Broken(self.line, "the text ends inside a step (no closing ')')")
            if kind in ("nl", "comment"):  # a step may span lines and hold comments, as in a plan file
                self._take()
                continue
            if kind == "name":
                words.append(value.lower())
            elif kind == "rpar" and words:
                self._take()
                return PlanStep(name=words[0], args=tuple(words[1:]), line=line + 1)
            else:
                what = "an object name or ')'" if words else "an action name"
                raise _Broken(self.line, f"expected {what}, found {value[:40]!r}", in_step=True)
            self._take()


def _plan_region(answer: str) -> tuple[int, int, int, int] | None:
    """The last `<plan>` region as (open start, open end, close start, close end); unclosed runs to the end."""
    pairs, _, open_at = _tag_pairs(answer, _PLAN_TAG)
    if open_at is not None:  # an unclosed open comes after every pair
        return open_at, answer.index(">", open_at) + 1, len(answer), len(answer)
    if not pairs:
        return None
    start, end = pairs[-1]
    return start, answer.index(">", start) + 1, answer.rindex("<", start, end), end


class PlanExtractor:
    """Turns completion text into an `Extraction`; stateless and cheap, one per process is enough."""

    def __init__(self, max_completion_bytes: int = 64 * 1024) -> None:
        if max_completion_bytes < 1:
            raise ValueError(f"max_completion_bytes must be >= 1, got {max_completion_bytes}")
        self.max_completion_bytes = max_completion_bytes

    def extract(self, text: str) -> Extraction:
        """Extract the plan of one completion (see the module docstring for the rules)."""
        size = len(text) if len(text) * 4 <= self.max_completion_bytes else len(text.encode("utf-8", "replace"))
        if size > self.max_completion_bytes:
            return Extraction(
                Plan(()),
                Label.PLAN_FORMAT_ERROR,
                f"completion is {size} bytes, over the cap of {self.max_completion_bytes}",
            )
        answer = _blank_out(text, _answer_spans(text))
        think = _think_spans(answer)
        answer = _blank_out(answer, think)
        region = _plan_region(answer)
        side: dict[int, LineFate] = {}  # lines with text outside the <plan> region
        view, after = answer, ""
        if region is not None:
            open_start, open_end, close_start, close_end = region
            view = _blank_out(answer, [(0, open_end), (close_start, len(answer))])
            after = answer[close_end:]
            for i, fragment in enumerate(answer[:open_start].split("\n")):
                if fragment.strip():
                    side[i] = LineFate.BEFORE
            first_after = answer.count("\n", 0, close_end)
            for i, fragment in enumerate(after.split("\n")):
                if fragment.strip():
                    side.setdefault(first_after + i, LineFate.AFTER)
        units = _LineParser(view).units()
        return _decide(text.split("\n"), answer.split("\n"), view.split("\n"), units, side, after, _covered(think))


def _decide(
    original: list[str], cleaned: list[str], view: list[str], units: list[_Unit],
    side: dict[int, LineFate], after: str, think_chars: int,
) -> Extraction:
    """Pick the last block of plan lines, give every line its fate, and decide the label."""
    plan_like = [i for i, u in enumerate(units) if u.kind in ("steps", "broken")]
    end = plan_like[-1] if plan_like else len(units)
    start = end
    while start > 0 and units[start - 1].kind != "other":
        start -= 1
    while start < end and units[start].kind in ("blank", "comment"):
        start += 1
    fates = [LineFate.BLANK] * len(original)
    for i, unit in enumerate(units):
        if unit.kind in ("blank", "comment"):
            fate = LineFate.BLANK if unit.kind == "blank" else LineFate.COMMENT
        elif start <= i <= end:
            fate = LineFate.KEPT if unit.kind == "steps" else LineFate.BROKEN
        else:
            fate = LineFate.BEFORE if i < start else LineFate.AFTER
        for line in range(unit.first, min(unit.last, len(fates) - 1) + 1):
            fates[line] = fate
    for line, fate in enumerate(fates):
        if fate is LineFate.BLANK and not view[line].strip() and original[line].strip():
            fates[line] = side.get(line, LineFate.OUTSIDE) if cleaned[line].strip() else LineFate.OUTSIDE
    dropped = sum(1 for i, f in enumerate(fates) if f is LineFate.BEFORE and not _FENCE.match(original[i]))
    if not plan_like:
        return Extraction(Plan(()), Label.EMPTY_PLAN, "no action line found", dropped, "", think_chars, tuple(fates))
    last_line = units[end].last
    trailing = ("\n".join(view[last_line + 1 :]) + after).strip()[:_TRAILING_KEEP]
    common = {"dropped_lines": dropped, "trailing_text": trailing, "think_chars": think_chars,
              "line_fates": tuple(fates)}
    block = units[start : end + 1]
    broken = [u for u in block if u.kind == "broken"]
    if broken:  # VAL would silently stop reading here and validate the steps before
        first = broken[0].first
        reason = f"line {first + 1} is not a well-formed action: {original[first].strip()[:80]!r} ({broken[0].reason})"
        return Extraction(Plan(()), Label.PLAN_FORMAT_ERROR, reason, **common)
    steps = [step for unit in block for step in unit.steps]
    no_plan = [s for s in steps if s.name == "no-plan" and not s.args]
    if no_plan and len(no_plan) == len(steps):
        return Extraction(Plan(()), Label.EMPTY_PLAN, "(NO-PLAN)", **common)
    if no_plan:
        return Extraction(Plan(()), Label.PLAN_FORMAT_ERROR, "(NO-PLAN) mixed with actions", **common)
    return Extraction(Plan(tuple(steps)), None, None, **common)
