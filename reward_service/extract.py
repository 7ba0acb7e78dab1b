"""PlanExtractor: from raw model text (chat transcripts, <think>, fences, prose) to a Plan, reporting what it dropped.

Rules (DESIGN.md "Plan extraction"): take the assistant part of a chat transcript (ChatML, Llama-3 headers,
Mistral `[INST]`, a plain "assistant" line); drop special tokens and `<think>...</think>`; if `<plan>` tags are
present use the last tagged part; then keep the trailing contiguous block of action lines. An action line is
`(name arg ...)` with optional `N:` / `N.` / `Step N:` / `-` prefixes, a `[d]` duration suffix and a `;` comment;
whitespace inside the parentheses is normalised (`( pickup a )` -> `(pickup a)`), names are lower-cased.
Blank and comment lines do not break a block; any other line does. `(NO-PLAN)` alone is an empty plan.

Where this is stricter than VAL (documented in docs/rewards.md): a line that starts with `(` but is not a
well-formed action, followed later in the same block by an action, makes the whole completion a
plan_format_error (VAL would stop reading at it and silently validate the prefix).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reward_service.result import Label, Plan, PlanStep

# Assistant-turn openers, most specific first; the text after the LAST one is the answer.
_ASSISTANT_OPENERS = (
    re.compile(r"<\|im_start\|>\s*assistant\b[^\n]*\n?"),  # ChatML (Qwen)
    re.compile(r"<\|start_header_id\|>\s*assistant\s*<\|end_header_id\|>\s*"),  # Llama-3
    re.compile(r"\[/INST\]"),  # Mistral / Llama-2
    re.compile(r"<\|assistant\|>\s*"),  # Phi / Zephyr
    re.compile(r"(?im)^[ \t]*(?:#+[ \t]*)?assistant[ \t]*:?[ \t]*$\n?"),  # plain "assistant" line
    re.compile(r"(?im)^[ \t]*assistant[ \t]*:[ \t]*"),  # "Assistant: ..." on one line
)
_END_OF_TURN = re.compile(r"<\|im_end\|>|<\|eot_id\|>|<\|end_of_text\|>|<\|endoftext\|>|<\|end\|>|</s>")
_SPECIAL_TOKEN = re.compile(r"<\|[A-Za-z0-9_]+\|>|</?s>|\[/?INST\]")
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_PLAN_TAG = re.compile(r"<plan>(.*?)(?:</plan>|\Z)", re.DOTALL | re.IGNORECASE)

_NAME = r"[A-Za-z0-9_][A-Za-z0-9_\-]*"
_ACTION = rf"\(\s*{_NAME}(?:\s+{_NAME})*\s*\)"
_ACTION_LINE = re.compile(
    rf"^\s*(?:(?:step\s*)?\d+\s*[:.)]\s*|[-*]\s+)?(?P<actions>{_ACTION}(?:\s*{_ACTION})*)"
    r"\s*(?:\[[^\]]*\])?\s*(?:;.*)?$",
    re.IGNORECASE,
)
_ONE_ACTION = re.compile(_ACTION)
_PAREN_START = re.compile(r"^\s*(?:(?:step\s*)?\d+\s*[:.)]\s*|[-*]\s+)?\(", re.IGNORECASE)
_FENCE = re.compile(r"^\s*```")
_TRAILING_KEEP = 200  # characters of text-after-the-block kept for the debug log

_ACTION_KIND, _BROKEN_KIND, _BLANK_KIND, _OTHER_KIND = "action", "broken", "blank", "other"


@dataclass(frozen=True)
class Extraction:
    """The plan found in one completion, its label when decided here, and what was dropped around it."""

    plan: Plan
    label: Label | None = None  # None: the plan goes to a validator; else plan_format_error / empty_plan
    reason: str | None = None  # why the label was decided here
    dropped_lines: int = 0  # non-blank lines before the kept block (prose, earlier drafts)
    trailing_text: str = ""  # text after the kept block, truncated to 200 characters
    think_chars: int = 0  # characters of <think> reasoning removed

    def dropped(self) -> dict[str, int | str]:
        """What extraction threw away, as the debug log and CLI JSON show it."""
        return {"lines_before": self.dropped_lines, "after": self.trailing_text, "think_chars": self.think_chars}


def assistant_segment(text: str) -> str:
    """The answer part of `text`: after the last assistant opener, up to the end of that turn."""
    start = 0
    for opener in _ASSISTANT_OPENERS:
        matches = list(opener.finditer(text))
        if matches:
            start = matches[-1].end()
            break
    answer = text[start:]
    end = _END_OF_TURN.search(answer)
    if end is not None:
        answer = answer[: end.start()]
    return _SPECIAL_TOKEN.sub("", answer)


def strip_thinking(text: str) -> tuple[str, int]:
    """Remove `<think>...</think>`; returns the rest and the number of characters removed."""
    removed = sum(len(m.group(0)) for m in _THINK_BLOCK.finditer(text))
    text = _THINK_BLOCK.sub("\n", text)  # a newline, so text around a block never joins into one line
    low = text.lower()
    close = low.rfind("</think>")
    if close >= 0:  # the opening tag was in the prompt (Qwen3 templates): all before the close is thinking
        removed += close + len("</think>")
        text = text[close + len("</think>") :]
        low = text.lower()
    opened = low.find("<think>")
    if opened >= 0:  # never closed: the answer never came
        removed += len(text) - opened
        text = text[:opened]
    return text, removed


def _classify(line: str) -> str:
    if not line.strip() or line.lstrip().startswith(";"):
        return _BLANK_KIND
    if _ACTION_LINE.match(line):
        return _ACTION_KIND
    if _PAREN_START.match(line):
        return _BROKEN_KIND
    return _OTHER_KIND


def _steps(line: str, line_no: int) -> list[PlanStep]:
    actions = _ACTION_LINE.match(line).group("actions")  # type: ignore[union-attr]  # classified as action
    steps = []
    for found in _ONE_ACTION.finditer(actions):
        words = found.group(0)[1:-1].lower().split()
        steps.append(PlanStep(name=words[0], args=tuple(words[1:]), line=line_no))
    return steps


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
        answer, think_chars = strip_thinking(assistant_segment(text))
        tagged = list(_PLAN_TAG.finditer(answer))
        before_tag, after_tag = "", ""
        if tagged:
            last = tagged[-1]
            before_tag, after_tag = answer[: last.start()], answer[last.end() :]
            answer = last.group(1)
        lines = answer.splitlines()
        kinds = [_classify(line) for line in lines]
        return self._from_lines(lines, kinds, before_tag, after_tag, think_chars)

    def _from_lines(
        self, lines: list[str], kinds: list[str], before_tag: str, after_tag: str, think_chars: int
    ) -> Extraction:
        # The kept block: from the last action line back over action / broken / blank lines.
        last_action = max((i for i, k in enumerate(kinds) if k == _ACTION_KIND), default=-1)
        before_lines = sum(1 for line in before_tag.splitlines() if line.strip())
        if last_action < 0:
            dropped = before_lines + sum(1 for k in kinds if k != _BLANK_KIND)
            return Extraction(Plan(()), Label.EMPTY_PLAN, "no action line found", dropped, "", think_chars)
        first = last_action
        while first > 0 and kinds[first - 1] in (_ACTION_KIND, _BROKEN_KIND, _BLANK_KIND):
            first -= 1
        while kinds[first] != _ACTION_KIND:  # a broken line before the first action is prose, not plan
            first += 1
        prose = [line for line, k in zip(lines[:first], kinds[:first], strict=True) if k != _BLANK_KIND]
        dropped = before_lines + sum(1 for line in prose if not _FENCE.match(line))
        trailing = ("\n".join(lines[last_action + 1 :]) + after_tag).strip()[:_TRAILING_KEEP]
        common = {"dropped_lines": dropped, "trailing_text": trailing, "think_chars": think_chars}
        steps: list[PlanStep] = []
        for i in range(first, last_action + 1):
            if kinds[i] == _BROKEN_KIND:  # an action follows it: VAL would silently stop here
                return Extraction(
                    Plan(()),
                    Label.PLAN_FORMAT_ERROR,
                    f"line {i + 1} is not a well-formed action: {lines[i].strip()[:80]!r}",
                    **common,
                )
            if kinds[i] == _ACTION_KIND:
                steps.extend(_steps(lines[i], i + 1))
        no_plan = [s for s in steps if s.name == "no-plan" and not s.args]
        if no_plan and len(no_plan) == len(steps):
            return Extraction(Plan(()), Label.EMPTY_PLAN, "(NO-PLAN)", **common)
        if no_plan:
            return Extraction(Plan(()), Label.PLAN_FORMAT_ERROR, "(NO-PLAN) mixed with actions", **common)
        return Extraction(Plan(tuple(steps)), None, None, **common)
