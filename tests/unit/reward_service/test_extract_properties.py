"""Property-based tests of PlanExtractor (issue 19): every line is reported, no bad token yields a shorter plan,
and a plan file's text reads the same through the extractor as through plan_file."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reward_service.extract import LineFate, PlanExtractor
from reward_service.plan_file import PlanFormatError, parse_plan_text
from reward_service.result import Label

EXTRACTOR = PlanExtractor()
NAME = re.compile(r"[a-z0-9_][a-z0-9_\-]*", re.ASCII)
NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
# derandomize: the same examples on every run, so CI is reproducible. Holes are hunted with a fresh random search,
# `PDDL_GRPO_HUNT_EXAMPLES=20000 pytest tests/unit/reward_service/test_extract_properties.py`; each one found
# becomes an explicit example below.
_HUNT = os.environ.get("PDDL_GRPO_HUNT_EXAMPLES")
SETTINGS = settings(max_examples=int(_HUNT or 300), deadline=None, derandomize=not _HUNT, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

names = st.text(alphabet=NAME_CHARS, min_size=1, max_size=8).filter(lambda s: s[0] != "-")
actions = st.lists(names, min_size=1, max_size=4).filter(lambda w: w[0].lower() != "no-plan")
# A character that no action may hold: anything but name characters and ASCII whitespace (non-ASCII spaces count).
bad_chars = st.characters(codec="utf-8").filter(lambda c: c not in NAME_CHARS and c not in " \t\r\n\f\v")
pieces = st.sampled_from([
    "(board c0 l0)", "(sail l0 l1)", "1: (debark c0 l1) [1]", "Step 2. (a b)", "- (x)", "(a) (b c)", "; note",
    "", "   ", "Here is the plan:", "```", "```pddl", "<think>", "</think>", "<plan>", "</plan>", "(Note: x.)",
    "<|im_start|>assistant", "<|im_end|>", "Assistant:", "[/INST]", "(NO-PLAN)", "(a\u212ab)", "(unclosed a",
    "0.5: (a) 1: (b)", "b)", "\u0130\u0131\u017f\u212a", "\t(a)\r",
])
texts = st.one_of(
    st.text(),
    st.lists(st.one_of(pieces, st.text(max_size=12)), max_size=25).map("\n".join),
    st.lists(st.one_of(pieces, st.text(max_size=6)), max_size=25).map("".join),
)


def _action_text(words: list[str]) -> str:
    return "(" + " ".join(words) + ")"


@SETTINGS
@given(texts)
@example("(unclosed a\nb)")  # found by a hunt: a step continued on the next line keeps both lines
@example("(/0) (0\n 0)\n (0) ")  # found by hypothesis in CI
def test_every_line_is_kept_or_reported(text: str) -> None:
    got = EXTRACTOR.extract(text)
    lines = text.split("\n")
    assert len(got.line_fates) == len(lines)
    for line, fate in zip(lines, got.line_fates, strict=True):
        if line.strip():  # a line with anything in it is never reported as blank
            assert fate is not LineFate.BLANK, (line, fate)
    kept = set(got.lines_with(LineFate.KEPT))
    block = sorted(kept | set(got.lines_with(LineFate.BROKEN)))
    if block:  # the kept block is contiguous: nothing dropped inside it but blanks, comments and <think>
        inside = got.line_fates[block[0] - 1 : block[-1]]
        assert set(inside) <= {LineFate.KEPT, LineFate.BROKEN, LineFate.BLANK, LineFate.COMMENT, LineFate.OUTSIDE}
        assert all(n < block[0] for n in got.lines_with(LineFate.BEFORE))
        assert all(n > block[-1] for n in got.lines_with(LineFate.AFTER))
    fences = sum(1 for n in got.lines_with(LineFate.BEFORE) if lines[n - 1].lstrip(" \t").startswith("```"))
    assert got.dropped_lines == len(got.lines_with(LineFate.BEFORE)) - fences
    if got.label is None:
        assert len(got.plan) > 0
        starts = {s.line for s in got.plan.steps}
        assert starts <= kept  # steps come from kept lines
        assert all(n - 1 in kept for n in kept - starts)  # a kept line gave steps or continues a step above it
        assert not got.lines_with(LineFate.BROKEN)
        for step in got.plan.steps:  # nothing but ASCII names reaches a validator
            assert all(NAME.fullmatch(w) for w in (step.name, *step.args)), step
    if got.lines_with(LineFate.BROKEN):
        assert got.label is Label.PLAN_FORMAT_ERROR


@SETTINGS
@given(
    plan=st.lists(actions, min_size=1, max_size=6),
    target=st.integers(min_value=0),
    offset=st.integers(min_value=0),
    bad=st.one_of(bad_chars, st.text(min_size=1, max_size=5).filter(
        lambda s: not set(s) <= set(NAME_CHARS + " \t\r\f\v") and not set(s) & set("\n<["))),
    before=st.sampled_from(["", "Here is the plan:\n", "(board c9 l9)\nno, better:\n", "<think>(x)</think>\n"]),
    after=st.sampled_from(["", "\n\nDone.", "\nThis plan has steps.", "<|im_end|>"]),
    numbered=st.booleans(),
)
def test_a_bad_token_inside_an_action_is_a_format_error_never_a_shorter_plan(
    plan: list[list[str]], target: int, offset: int, bad: str, before: str, after: str, numbered: bool
) -> None:
    lines = [_action_text(words) for words in plan]
    i = target % len(lines)
    cut = 1 + offset % (len(lines[i]) - 1)  # after "(" and before ")"
    lines[i] = lines[i][:cut] + bad + lines[i][cut:]
    if numbered:
        lines = [f"{n + 1}. {line}" for n, line in enumerate(lines)]
    got = EXTRACTOR.extract(before + "\n".join(lines) + after)
    assert got.label is Label.PLAN_FORMAT_ERROR, (lines[i], got)
    assert got.plan.steps == ()


def _plan_file_text(plan: list[list[str]], stamps: bool, layout: list[int]) -> str:
    """A plan in VAL's file format: steps grouped on lines, some split over two lines, comments and blanks."""
    out, t = [], 0.0
    for n, words in enumerate(plan):
        step = _action_text(words)
        choice = layout[n % len(layout)]
        if choice == 1 and len(words) > 1:  # the step spans two lines
            step = "(" + words[0] + "\n   " + " ".join(words[1:]) + ")"
        if stamps:
            t += 1
            step = f"{t:g}: {step} [1]"
        out.append(step)
        out.append("\n" if choice != 2 else " ")
        if choice == 3:
            out.append("; a comment\n\n")
    return "".join(out)


@SETTINGS
@given(
    plan=st.lists(actions, min_size=1, max_size=6),
    stamps=st.booleans(),
    layout=st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=6),
    corrupt=st.one_of(st.none(), st.tuples(st.integers(min_value=0), bad_chars)),
)
def test_plan_file_and_extractor_read_the_same_text_the_same(
    plan: list[list[str]], stamps: bool, layout: list[int], corrupt: tuple[int, str] | None
) -> None:
    text = _plan_file_text(plan, stamps, layout)
    if corrupt is not None:  # one bad character somewhere inside a step's parentheses
        opens = [m.start() for m in re.finditer(r"\(", text)]
        at = opens[corrupt[0] % len(opens)] + 1
        text = text[:at] + corrupt[1] + text[at:]
    try:
        from_file = parse_plan_text(text)
    except PlanFormatError:
        from_file = None
    got = EXTRACTOR.extract(text)
    if from_file is None:
        assert got.label is Label.PLAN_FORMAT_ERROR, (text, got)
    else:
        assert got.label is None, (text, got)
        assert got.plan == from_file  # the same steps, names, arguments and line numbers


@pytest.mark.parametrize("text", [
    "(/0) (0\n 0)\n (0) ",  # found by hypothesis in CI: a broken step, then a step continued on the next line
    "(a\n /) (b\n c)\n(d)",  # the same, broken inside a continuation line
    "()0\n   0)\n(0)\n",  # found by a hunt: the tail of a broken step is not prose
    "(a)\n 0)\n(b)",  # a stray step tail between two plan lines
])
def test_a_broken_step_and_its_tail_are_never_taken_for_prose(text: str) -> None:
    with pytest.raises(PlanFormatError):
        parse_plan_text(text)
    assert EXTRACTOR.extract(text).label is Label.PLAN_FORMAT_ERROR


@pytest.mark.parametrize("text", ["(a b)\n(c)", "0: (a b) [1]\n1: (c) [1]", "(a\n b) ; x\n\n(c)"])
def test_plan_file_agreement_examples(text: str) -> None:
    assert EXTRACTOR.extract(text).plan == parse_plan_text(text)
