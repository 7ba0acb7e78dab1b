"""PlanExtractor on realistic chat transcripts of Qwen, Mistral and Llama-3, and on the edge cases of DESIGN.md."""

from __future__ import annotations

import time

import pytest

from reward_service.extract import LineFate, PlanExtractor, assistant_segment, strip_thinking
from reward_service.result import Label

FERRY_PLAN = ["(board c0 l0)", "(sail l0 l1)", "(debark c0 l1)"]
PLAN_TEXT = "\n".join(FERRY_PLAN)
PROMPT = "Domain: ferry. Cars c0, c1 at l0. Goal: c0 at l1.\nWrite the plan, one (action args) per line."

QWEN = (
    "<|im_start|>system\nYou are a helpful planner. Example: (board c9 l9)<|im_end|>\n"
    f"<|im_start|>user\n{PROMPT}<|im_end|>\n"
    "<|im_start|>assistant\n{answer}<|im_end|>\n<|endoftext|>"
)
MISTRAL = "<s>[INST] " + PROMPT + " For instance (sail l5 l6). [/INST] {answer}</s>"
LLAMA3 = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou plan. (noop x)<|eot_id|>"
    f"<|start_header_id|>user<|end_header_id|>\n\n{PROMPT}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{answer}<|eot_id|>"
)
PLAIN = "User: " + PROMPT + "\n(example a b)\nAssistant:\n{answer}"

ANSWERS = {
    "bare": PLAN_TEXT,
    "prose_before_after": f"Sure! Here is a plan that moves c0.\n\n{PLAN_TEXT}\n\nThis plan is 3 steps long.",
    "code_fence": f"The plan:\n```pddl\n{PLAN_TEXT}\n```\nEach step is applicable.",
    "numbered": "Plan:\n" + "\n".join(f"{i}: {a} [1]" for i, a in enumerate(FERRY_PLAN)),
    "dotted_steps": "\n".join(f"Step {i + 1}. {a}" for i, a in enumerate(FERRY_PLAN)),
    "explained_after": f"{PLAN_TEXT}\n\nExplanation: first we board c0 at l0, then we sail to l1.",
    "comments": "; plan found\n" + "\n".join(f"{a} ; step {i}" for i, a in enumerate(FERRY_PLAN)),
    "plan_tags": f"I think (sail l1 l0) first.\n<plan>\n{PLAN_TEXT}\n</plan>\nDone (really).",
    "think": "<think>\nMaybe (board c1 l0)?\n(sail l0 l2)\nNo, c0 first.\n</think>\n" + PLAN_TEXT,
    "spaced_parens": "( board  c0 l0 )\n(  sail l0 l1)\n(debark c0 l1 )",
    "upper_case": PLAN_TEXT.upper(),
    "draft_then_final": "Draft:\n(board c1 l0)\n(sail l0 l2)\n\nFinal answer:\n" + PLAN_TEXT,
}


@pytest.fixture(scope="module")
def extractor() -> PlanExtractor:
    return PlanExtractor()


@pytest.mark.parametrize("template", [QWEN, MISTRAL, LLAMA3, PLAIN], ids=["qwen", "mistral", "llama3", "plain"])
@pytest.mark.parametrize("answer", sorted(ANSWERS))
def test_extracts_the_plan_from_chat_transcripts(extractor: PlanExtractor, template: str, answer: str) -> None:
    got = extractor.extract(template.replace("{answer}", ANSWERS[answer]))
    assert got.label is None, got.reason
    assert [str(s) for s in got.plan.steps] == FERRY_PLAN


def test_reports_prose_before_and_text_after(extractor: PlanExtractor) -> None:
    got = extractor.extract(QWEN.replace("{answer}", ANSWERS["prose_before_after"]))
    assert got.dropped_lines == 1
    assert got.trailing_text == "This plan is 3 steps long."
    assert got.dropped() == {"lines_before": 1, "after": "This plan is 3 steps long.", "think_chars": 0}


def test_qwen3_think_is_dropped_and_counted(extractor: PlanExtractor) -> None:
    thinking = "<think>\nLet me try (board c1 l0) then (sail l0 l2).\n(board c1 l0)\n</think>\n\n"
    got = extractor.extract(QWEN.replace("{answer}", thinking + PLAN_TEXT))
    assert [str(s) for s in got.plan.steps] == FERRY_PLAN
    assert got.think_chars == len(thinking.strip())


def test_think_opened_in_prompt_counts_everything_before_close_as_thinking(extractor: PlanExtractor) -> None:
    # Qwen3's template may put "<think>" in the prompt: the completion starts inside the reasoning.
    got = extractor.extract("(board c1 l0)\n(sail l0 l2)\n</think>\n" + PLAN_TEXT)
    assert [str(s) for s in got.plan.steps] == FERRY_PLAN


def test_unclosed_think_is_an_empty_plan(extractor: PlanExtractor) -> None:
    got = extractor.extract(QWEN.replace("{answer}", "<think>\nFirst (board c0 l0), then (sail l0 l1) and"))
    assert got.label is Label.EMPTY_PLAN
    assert len(got.plan) == 0


@pytest.mark.parametrize("answer", ["", "   \n\n", "I cannot find a plan for this problem."])
def test_no_action_is_an_empty_plan(extractor: PlanExtractor, answer: str) -> None:
    got = extractor.extract(MISTRAL.replace("{answer}", answer))
    assert got.label is Label.EMPTY_PLAN
    assert got.plan.steps == ()


@pytest.mark.parametrize("answer", ["(NO-PLAN)", "No plan exists.\n(no-plan)", "```\n(NO-PLAN)\n```"])
def test_no_plan_marker_is_an_empty_plan(extractor: PlanExtractor, answer: str) -> None:
    got = extractor.extract(LLAMA3.replace("{answer}", answer))
    assert got.label is Label.EMPTY_PLAN
    assert got.reason == "(NO-PLAN)"


def test_no_plan_mixed_with_actions_is_a_format_error(extractor: PlanExtractor) -> None:
    got = extractor.extract("(board c0 l0)\n(NO-PLAN)")
    assert got.label is Label.PLAN_FORMAT_ERROR


def test_broken_line_inside_the_block_is_a_format_error(extractor: PlanExtractor) -> None:
    # VAL would stop reading at line 2 and validate only (board c0 l0); the project refuses the plan.
    got = extractor.extract("(board c0 l0)\n(sail l0, l1)\n(debark c0 l1)")
    assert got.label is Label.PLAN_FORMAT_ERROR
    assert "line 2" in (got.reason or "")


def test_truncated_last_action_is_a_format_error_not_a_shorter_plan(extractor: PlanExtractor) -> None:
    # A plan file cut there is plan_format_error too (plan_file): both paths agree, no prefix is scored.
    got = extractor.extract("(board c0 l0)\n(sail l0 l1)\n(debark c0")
    assert got.label is Label.PLAN_FORMAT_ERROR
    assert "line 3" in (got.reason or "") and "ends inside a step" in (got.reason or "")
    assert got.lines_with(LineFate.BROKEN) == [3]


def test_parenthesised_prose_next_to_the_plan_is_a_format_error(extractor: PlanExtractor) -> None:
    # It cannot be told from an action with a bad token (U+212A in "(debar\u212a c0 l1)"), so it is one.
    got = extractor.extract("(Note: the ferry holds one car.)\n" + PLAN_TEXT)
    assert got.label is Label.PLAN_FORMAT_ERROR
    assert "line 1" in (got.reason or "")


def test_parenthesised_prose_apart_from_the_plan_is_dropped(extractor: PlanExtractor) -> None:
    got = extractor.extract("(Note: the ferry holds one car.)\nThe plan:\n" + PLAN_TEXT)
    assert got.label is None
    assert len(got.plan) == 3
    assert got.dropped_lines == 2
    assert got.lines_with(LineFate.BEFORE) == [1, 2]


@pytest.mark.parametrize("char", ["\u212a", "\u017f", "\u0130", "\u0131", "\u00a0", "\u2028"])
@pytest.mark.parametrize("where", ["middle", "last", "first", "alone"])
def test_a_non_ascii_character_inside_an_action_is_a_format_error(
    extractor: PlanExtractor, char: str, where: str
) -> None:
    # Issue 19: U+212A and friends matched one case-insensitive regex but not the extracting one: the step vanished.
    bad = f"(debar{char} c0 l1)"
    steps = {"middle": [FERRY_PLAN[0], bad, FERRY_PLAN[2]], "last": [*FERRY_PLAN[:2], bad],
             "first": [bad, *FERRY_PLAN[1:]], "alone": [bad]}[where]
    got = extractor.extract(QWEN.replace("{answer}", "Plan:\n" + "\n".join(steps)))
    assert got.label is Label.PLAN_FORMAT_ERROR, got
    assert got.plan.steps == ()


@pytest.mark.parametrize("char", ["\u0130", "\u212a", "\u017f"])
def test_case_folding_characters_before_a_think_close_do_not_shift_the_answer(
    extractor: PlanExtractor, char: str
) -> None:
    # str.lower() turns U+0130 into two characters: offsets found in the lower-cased copy cut the plan short.
    got = extractor.extract(char * 10 + "</think>\n" + PLAN_TEXT)
    assert [str(s) for s in got.plan.steps] == FERRY_PLAN
    not_a_tag = extractor.extract(f"<thin{char}>\n" + PLAN_TEXT)  # prose, not an unclosed <think>
    assert len(not_a_tag.plan) == 3 and not_a_tag.line_fates[0] is LineFate.BEFORE


def test_a_step_may_span_lines_as_in_a_plan_file(extractor: PlanExtractor) -> None:
    got = extractor.extract("(board c0\n   l0)\n(sail l0 l1)")
    assert [str(s) for s in got.plan.steps] == FERRY_PLAN[:2]
    assert [s.line for s in got.plan.steps] == [1, 3]
    assert got.line_fates == (LineFate.KEPT, LineFate.KEPT, LineFate.KEPT)


def test_timestamps_and_durations_between_steps_on_one_line(extractor: PlanExtractor) -> None:
    got = extractor.extract("0: (board c0 l0) [1] 1.5: (sail l0 l1) [1]")
    assert [str(s) for s in got.plan.steps] == FERRY_PLAN[:2]


def test_every_line_of_a_transcript_gets_a_fate(extractor: PlanExtractor) -> None:
    text = QWEN.replace("{answer}", "Sure.\n<think>\nhmm\n</think>\n" + PLAN_TEXT + "\n\nDone.")
    got = extractor.extract(text)
    fates = [f.value for f in got.line_fates]
    assert len(fates) == text.count("\n") + 1
    assert fates == ["outside"] * 6 + ["before"] + ["outside"] * 3 + ["kept"] * 3 + ["blank", "after", "outside"]


def test_unclosed_think_repeated_is_linear(extractor: PlanExtractor) -> None:
    # Issue 19: 9,000 unclosed <think> took 4-18 s (a non-greedy regex rescanned the rest from every tag).
    start = time.perf_counter()
    for text in ("<think>" * 9000, "<plan>" * 9000, "</think>" * 9000, "<think>(" * 8000):
        extractor.extract(text)
    assert time.perf_counter() - start < 1.0


def test_several_actions_on_one_line_and_blank_lines_inside(extractor: PlanExtractor) -> None:
    got = extractor.extract("(board c0 l0) (sail l0 l1)\n\n(debark c0 l1)")
    assert [str(s) for s in got.plan.steps] == FERRY_PLAN
    assert [s.line for s in got.plan.steps] == [1, 1, 3]


def test_keeps_the_last_block_and_counts_earlier_ones_as_dropped(extractor: PlanExtractor) -> None:
    got = extractor.extract("(board c1 l0)\nWait, that is wrong. Corrected:\n" + PLAN_TEXT)
    assert [str(s) for s in got.plan.steps] == FERRY_PLAN
    assert got.dropped_lines == 2


def test_over_the_size_cap_is_a_format_error_without_parsing() -> None:
    small = PlanExtractor(max_completion_bytes=100)
    got = small.extract(PLAN_TEXT + "\n" + "x" * 100)
    assert got.label is Label.PLAN_FORMAT_ERROR
    assert "over the cap of 100" in (got.reason or "")
    multibyte = "é" * 40 + "\n" + PLAN_TEXT  # 80 UTF-8 bytes of prose + the plan: over 100 bytes, under 100 chars
    assert len(multibyte) < 100 and small.extract(multibyte).label is Label.PLAN_FORMAT_ERROR


def test_ten_megabytes_of_garbage_is_bounded() -> None:
    got = PlanExtractor().extract("\x00\xff(" * 3_500_000)
    assert got.label is Label.PLAN_FORMAT_ERROR


def test_assistant_segment_takes_the_last_turn_and_drops_special_tokens() -> None:
    text = QWEN.replace("{answer}", "ok")
    assert assistant_segment(text).strip() == "ok"
    two_turns = text + "<|im_start|>user\nagain<|im_end|>\n<|im_start|>assistant\nsecond<|im_end|>"
    assert assistant_segment(two_turns).strip() == "second"


def test_strip_thinking_reports_removed_characters() -> None:
    rest, removed = strip_thinking("a<think>xyz</think>b")
    assert rest.replace("\n", "") == "ab"
    assert removed == len("<think>xyz</think>")


def test_rejects_a_non_positive_cap() -> None:
    with pytest.raises(ValueError, match="max_completion_bytes must be >= 1, got 0"):
        PlanExtractor(0)
