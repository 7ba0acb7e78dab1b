"""Tokenizer and s-expression reader for PDDL: lower-cases like VAL and keeps each token's line number."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

from reward_service.pddl.errors import PddlLeniencyWarning, PddlParseError

# A token is a parenthesis or a run of anything else that is not whitespace, a parenthesis or a comment.
_TOKEN = re.compile(r"\(|\)|[^\s();]+|;[^\n]*|\n")


@dataclass(frozen=True)
class Sym:
    """An atom of the text (a name, a variable, a keyword), lower-cased, with its 1-based line."""

    text: str
    line: int

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class SList:
    """A parenthesised list with the line of its opening parenthesis."""

    items: tuple[SList | Sym, ...]
    line: int

    def __len__(self) -> int:
        return len(self.items)

    def head(self) -> str | None:
        """The first item's text when it is a symbol (the list's keyword), else None."""
        if self.items and isinstance(self.items[0], Sym):
            return self.items[0].text
        return None

    def __str__(self) -> str:
        return "(" + " ".join(str(i) for i in self.items) + ")"


SExpr = SList | Sym


def read_sexpr(text: str, filename: str) -> SList:
    """Read exactly one top-level list from `text`; raise PddlParseError naming file and line otherwise.

    Surplus `)` after the complete definition are ignored with a PddlLeniencyWarning, as VAL ignores
    them (a real Safety-gen domain file has one). Any other text after the end stays an error: VAL
    ignores that too, but it is most often a `)` misplaced earlier that cut sections off the definition.
    """
    stack: list[tuple[list[SExpr], int]] = []
    result: SList | None = None
    surplus: list[int] = []  # lines of `)` after the end of the definition
    line = 1
    for match in _TOKEN.finditer(text.lower()):
        tok = match.group()
        if tok == "\n":
            line += 1
        elif tok[0] == ";":
            continue
        elif tok == "(":
            if result is not None:
                raise PddlParseError(_after_end(surplus), filename, line, tok)
            stack.append(([], line))
        elif tok == ")":
            if not stack and result is not None:
                surplus.append(line)
                continue
            if not stack:
                raise PddlParseError("unbalanced parentheses: unexpected", filename, line, ")")
            items, start = stack.pop()
            node = SList(tuple(items), start)
            if stack:
                stack[-1][0].append(node)
            else:
                result = node
        else:
            if not stack and result is not None:
                raise PddlParseError(_after_end(surplus), filename, line, tok)
            if not stack:
                raise PddlParseError("symbol outside parentheses", filename, line, tok)
            stack[-1][0].append(Sym(tok, line))
    if stack:
        raise PddlParseError("unbalanced parentheses: list never closed", filename, stack[-1][1], "(")
    if result is None:
        raise PddlParseError("no PDDL definition found", filename, line, None)
    if surplus:
        where = f"line {surplus[0]}" if len(surplus) == 1 else f"lines {surplus[0]}-{surplus[-1]}"
        warnings.warn(PddlLeniencyWarning(
            f"{filename}:{surplus[0]}: {len(surplus)} surplus ')' after the end of the definition ({where}) "
            "ignored, as VAL ignores them"), stacklevel=2)
    return result


def _after_end(surplus: list[int]) -> str:
    if surplus:  # `(a))  (b)`: the early `)` closed the definition, so what follows would be dropped
        return f"text after the end of the definition (closed early by the surplus ')' on line {surplus[0]}?)"
    return "text after the end of the definition"
