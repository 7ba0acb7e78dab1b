"""Tests of the PDDL tokenizer / s-expression reader: case, comments, line numbers, unbalanced input."""

from __future__ import annotations

import pytest

from reward_service.pddl import PddlParseError
from reward_service.pddl.errors import PddlLeniencyWarning
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
    [("(a (b\n(c)", 1, "("), (")\n(a)", 1, ")"), ("(a) (b)", 1, "("), ("(a)\n)\n(b)", 3, "("), ("(a) x", 1, "x"),
     ("", 1, None), ("x (a)", 1, "x")],
)
def test_bad_structure_names_line_and_symbol(text, line, symbol):
    with pytest.raises(PddlParseError) as err:
        read_sexpr(text, "bad.pddl")
    assert err.value.filename == "bad.pddl" and err.value.line == line and err.value.symbol == symbol
    assert str(err.value).startswith(f"bad.pddl:{line}: ")


def test_surplus_closing_parentheses_after_the_definition_are_ignored_with_a_warning():
    # VAL reads the first complete (define ...) and ignores what follows; a real Safety-gen domain has one `)` more
    with pytest.warns(PddlLeniencyWarning, match=r"^d\.pddl:3: 2 surplus '\)' after the end of the definition "
                      r"\(lines 3-4\) ignored, as VAL ignores them$"):
        assert str(read_sexpr("(define (domain d)\n (:predicates (p)))\n)\n) ; trailing comment\n", "d.pddl")) == (
            "(define (domain d) (:predicates (p)))")


def test_after_the_end_error_points_at_an_earlier_surplus_parenthesis():
    with pytest.raises(PddlParseError, match=r"closed early by the surplus '\)' on line 2"):
        read_sexpr("(define (domain d)\n (:predicates (p))))\n (:action a))", "d.pddl")


def test_binary_garbage_is_a_parse_error_not_a_crash():
    with pytest.raises(PddlParseError):
        read_sexpr("\x00\xff(\x01 ((( \ufffd", "garbage")
