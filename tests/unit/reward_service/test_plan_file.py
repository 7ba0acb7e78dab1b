"""Tests of the plan-file reader: VAL's formats, line numbers, and exact errors on unreadable input."""

from __future__ import annotations

import os
import time

import pytest

from reward_service.plan_file import PlanFormatError, parse_plan_text, read_plan_file
from reward_service.result import PlanStep


def _steps(text: str) -> list[tuple[str, tuple[str, ...], int]]:
    return [(s.name, s.args, s.line) for s in parse_plan_text(text).steps]


def test_bare_steps_keep_names_args_and_lines():
    assert _steps("(pick-up b)\n\n(stack b c)\n") == [("pick-up", ("b",), 1), ("stack", ("b", "c"), 3)]


def test_upper_case_is_lower_cased():
    assert _steps("(PICK-UP B)\n(Stack B C)") == [("pick-up", ("b",), 1), ("stack", ("b", "c"), 2)]


def test_timestamps_durations_and_comments_are_dropped():
    text = "; a plan\n0: (pick-up b) [1]\n1.5:(stack b c) ; done\n2 : ( pick-up a )[1.0]\n"
    assert _steps(text) == [("pick-up", ("b",), 2), ("stack", ("b", "c"), 3), ("pick-up", ("a",), 4)]


def test_several_steps_on_one_line_and_one_step_over_lines_as_val_reads_them():
    assert _steps("(a x) (b y)\n(c\n z)") == [("a", ("x",), 1), ("b", ("y",), 1), ("c", ("z",), 2)]


def test_zero_argument_step_and_empty_text():
    assert _steps("(noop)") == [("noop", (), 1)]
    assert parse_plan_text("").steps == ()
    assert parse_plan_text("; only a comment\n\n").steps == ()


def test_round_trip_through_to_text():
    plan = parse_plan_text("0: (PICK-UP b) [1]\n1: (stack b c) [1]\n")
    again = parse_plan_text(plan.to_text())
    assert [(s.name, s.args) for s in again.steps] == [(s.name, s.args) for s in plan.steps]
    assert again.steps[1] == PlanStep("stack", ("b", "c"), line=2)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("(pick-up b)\n(stack b c)\nthis is junk\n(pick-up a)", 3, "expected '(' to start a step, found 'this'"),
        ("(pick-up b\n", 2, "found end of text"),
        ("(pick-up b))", 1, "found ')'"),
        ("()", 1, "an action name after '('"),
        ("(pick-up ?x)", 1, "found '?'"),
        ("1: (a)\n(b)", 2, "mixes timestamped and untimed steps"),
        ("(a)\n1: (b)", 2, "mixes timestamped and untimed steps"),
        ("1: (a)\n1: (b)", 2, "timestamp 1 is not after the previous step's 1"),
        ("2: (a)\n1: (b)", 2, "timestamp 1 is not after the previous step's 2"),
        ("1 (a)", 1, "expected '(' to start a step, found '1'"),
        ("(a)\n\n(b)\0(c)", 3, "binary data"),
    ],
)
def test_unreadable_text_names_file_and_line(text: str, line: int, fragment: str):
    with pytest.raises(PlanFormatError) as info:
        parse_plan_text(text, filename="p.plan")
    err = info.value
    assert (err.filename, err.line) == ("p.plan", line)
    assert fragment in str(err)
    assert str(err).startswith(f"p.plan:{line}: ")


def test_plan_format_error_is_a_value_error():
    with pytest.raises(ValueError):
        parse_plan_text("junk")


def test_oversized_text_is_refused_quickly():
    text = "(pick-up b)\n" * 900_000  # ~10 MB
    t0 = time.perf_counter()
    with pytest.raises(PlanFormatError, match="over the 1000000-byte limit"):
        parse_plan_text(text)
    assert time.perf_counter() - t0 < 0.5


def test_binary_garbage_fails_in_bounded_time():
    data = os.urandom(200_000).decode("latin-1")
    t0 = time.perf_counter()
    with pytest.raises(PlanFormatError):
        parse_plan_text(data)
    assert time.perf_counter() - t0 < 1.0


def test_read_plan_file_checks_size_before_reading(tmp_path):
    big = tmp_path / "big.plan"
    big.write_bytes(b"(a)\n" * 300_000)
    with pytest.raises(PlanFormatError, match=r"big.plan:1: plan is 1200000 bytes"):
        read_plan_file(big)
    bad = tmp_path / "bad.plan"
    bad.write_bytes(b"(a b)\n\xff\xfe junk\n")
    with pytest.raises(PlanFormatError, match=r"bad.plan:2: "):
        read_plan_file(bad)
    ok = tmp_path / "ok.plan"
    ok.write_text("(A B)\n")
    assert read_plan_file(ok).steps == (PlanStep("a", ("b",), 1),)
