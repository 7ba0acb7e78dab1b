"""Tests of the PDDL tokenizer / s-expression reader: case, comments, line numbers, unbalanced input."""

from __future__ import annotations

import pytest

from reward_service.pddl import PddlParseError
from reward_service.pddl.sexpr import SList, Sym, read_sexpr


def test_reads_nested_lists_lower_cased_with_lines():
    root = read_sexpr("(Define ; comment (\n  (Domain X)\n  (:Predicates (P ?A)))", "f.pddl")
    assert root.head() == "define"
    domain = root.items[1]
    assert isinstance(domain, SList) and str(domain) == "(domain x)" and domain.line == 2
    preds = root.items[2]
    assert preds.line == 3 and isinstance(preds.items[1].items[1], Sym) and preds.items[1].items[1].text == "?a"


def test_comment_may_contain_parentheses():
    assert str(read_sexpr("(a ; ) ( (\n b)", "f")) == "(a b)"


@pytest.mark.parametrize(
    ("text", "line", "symbol"),
    [("(a (b\n(c)", 1, "("), ("(a)\n)", 2, ")"), ("(a) (b)", 1, "("), ("", 1, None), ("x (a)", 1, "x")],
)
def test_bad_structure_names_line_and_symbol(text, line, symbol):
    with pytest.raises(PddlParseError) as err:
        read_sexpr(text, "bad.pddl")
    assert err.value.filename == "bad.pddl" and err.value.line == line and err.value.symbol == symbol
    assert str(err.value).startswith(f"bad.pddl:{line}: ")


def test_binary_garbage_is_a_parse_error_not_a_crash():
    with pytest.raises(PddlParseError):
        read_sexpr("\x00\xff(\x01 ((( \ufffd", "garbage")
