"""DifficultySpec: a problem file name -> named parameters -> the seed's score 5n + 3r + 2o.

Each domain names its problems after the generator's parameters; a named-group regex reads
them and three small expressions map them onto the seed's n (goal-sized count), r (robots,
vehicles, agents) and o (other objects). Built-in specs cover the five domains:

| domain | file name | n | r | o |
|---|---|---|---|---|
| blocksworld | bw_ops4_n<blocks>_seed<seed> (also bw_ops3_...) | blocks | 1 (the arm) | 0 |
| ferry | ferry-l<locations>-c<cars>-s<seed> | cars | 1 (the ferry) | locations |
| grippers | grippers-n<robots>-r<rooms>-o<balls>-s<seed> | balls | robots | rooms |
| spanner | spanner-s<spanners>-n<nuts>-l<locations>-s<seed> | nuts | 1 (the man) | spanners + locations |
| delivery | delivery-s<size>-p<packages>-seed<seed> | packages | 1 (the truck) | size * size cells |

Blocksworld has one arm and no objects besides the blocks, hence r = 1, o = 0.

Named presets (`sampler.difficulty`): `seed_doc`, the score above as the seed's document gives it
(the default), and `safety_gen_code`, what the seed's trainer code computes instead: a product of the
counts per domain (blocks^2, locations*cars, robots*rooms*balls, spanners*nuts*locations, size*packages).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sampler.config import DifficultySpecConfig

_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div)


class Expression:
    """A tiny arithmetic expression (+ - * /, numbers, names), checked once, evaluated many times."""

    def __init__(self, text: str) -> None:
        self.text = text
        try:
            self._tree = ast.parse(text, mode="eval").body
        except SyntaxError as err:
            raise ValueError(f"bad difficulty expression {text!r}: {err.msg}") from err
        self.names = frozenset(self._check(self._tree))
        self._code = compile(ast.Expression(self._tree), "<difficulty>", "eval")

    def _check(self, node: ast.AST) -> set[str]:
        if isinstance(node, ast.BinOp) and isinstance(node.op, _BINOPS):
            return self._check(node.left) | self._check(node.right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return self._check(node.operand)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return set()
        if isinstance(node, ast.Name):
            return {node.id}
        raise ValueError(f"bad difficulty expression {self.text!r}: only + - * /, numbers and names are allowed")

    def __call__(self, values: Mapping[str, Any]) -> Any:
        """Value for scalars, or element-wise for numpy arrays (the loader scores a whole domain at once)."""
        # Safe: the tree was checked to hold only arithmetic, numbers and names; no builtins reachable.
        return eval(self._code, {"__builtins__": {}}, dict(values))  # noqa: S307

    def __reduce__(self) -> tuple[Any, ...]:
        return (Expression, (self.text,))


@dataclass(frozen=True)
class DifficultySpec:
    """One domain's file-name regex and the mapping of its groups to n, r, o and a score."""

    domain: str
    pattern: str
    n: str
    r: str = "1"
    o: str = "0"
    score: str = "5*n + 3*r + 2*o"
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _exprs: tuple[Expression, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.compile(self.pattern)
        groups = set(regex.groupindex)
        exprs = tuple(Expression(t) for t in (self.n, self.r, self.o, self.score))
        for expr in exprs[:3]:
            if unknown := expr.names - groups:
                raise ValueError(f"difficulty spec of {self.domain}: {expr.text!r} names {sorted(unknown)}, "
                                 f"not groups of {self.pattern!r}")
        if unknown := exprs[3].names - groups - {"n", "r", "o"}:
            raise ValueError(f"difficulty spec of {self.domain}: score {self.score!r} names unknown {sorted(unknown)}")
        object.__setattr__(self, "_regex", regex)
        object.__setattr__(self, "_exprs", exprs)

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the regex groups in pattern order: the keys of `difficulty_params`."""
        return tuple(self._regex.groupindex)

    def parse(self, problem_file: str) -> dict[str, int] | None:
        """Params read from the file's base name, or None when the name does not match."""
        row = self.parse_row(problem_file)
        return None if row is None else dict(zip(self.param_names, row, strict=True))

    def parse_row(self, problem_file: str) -> list[int] | None:
        """Params in param_names order (the loader's hot path), or None when the name does not match."""
        match = self._regex.match(problem_file.rpartition("/")[2])
        if match is None:
            return None
        return [int(match[k]) for k in self._regex.groupindex]

    def default_params(self) -> dict[str, int]:
        """Params used for a name that does not parse, when configured: every group 1."""
        return dict.fromkeys(self.param_names, 1)

    def score_of(self, params: Mapping[str, int]) -> float:
        """The score of a problem: n, r, o from their expressions, then the score expression."""
        values: dict[str, Any] = dict(params)
        values["n"], values["r"], values["o"] = (e(params) for e in self._exprs[:3])
        return float(self._exprs[3](values))

    def scores_of(self, params: np.ndarray) -> np.ndarray:
        """Scores of many problems at once: one row of params (in param_names order) per problem."""
        values: dict[str, Any] = {k: params[:, j].astype(np.float64) for j, k in enumerate(self.param_names)}
        values["n"], values["r"], values["o"] = (e(values) for e in self._exprs[:3])
        return np.broadcast_to(np.asarray(self._exprs[3](values), dtype=np.float64), (len(params),)).copy()

    @classmethod
    def from_config(cls, domain: str, cfg: DifficultySpecConfig) -> DifficultySpec:
        return cls(domain=domain, pattern=cfg.pattern, n=cfg.n, r=cfg.r, o=cfg.o, score=cfg.score)


_SEED = r"(?P<seed>\d+)"
DEFAULT_SPECS: dict[str, DifficultySpec] = {
    "blocksworld": DifficultySpec("blocksworld", rf"bw_ops(?P<ops>\d+)_n(?P<blocks>\d+)_seed{_SEED}", n="blocks"),
    "ferry": DifficultySpec("ferry", rf"ferry-l(?P<locations>\d+)-c(?P<cars>\d+)-s{_SEED}", n="cars", o="locations"),
    "grippers": DifficultySpec(
        "grippers", rf"grippers-n(?P<robots>\d+)-r(?P<rooms>\d+)-o(?P<balls>\d+)-s{_SEED}",
        n="balls", r="robots", o="rooms",
    ),
    "spanner": DifficultySpec(
        "spanner", rf"spanner-s(?P<spanners>\d+)-n(?P<nuts>\d+)-l(?P<locations>\d+)-s{_SEED}",
        n="nuts", o="spanners + locations",
    ),
    "delivery": DifficultySpec(
        "delivery", rf"delivery-s(?P<size>\d+)-p(?P<packages>\d+)-seed{_SEED}", n="packages", o="size * size"
    ),
}


# The seed trainer's scores (its code, not its document): products of the file name's counts.
SAFETY_GEN_CODE_SCORES: dict[str, str] = {
    "blocksworld": "blocks * blocks",
    "ferry": "locations * cars",
    "grippers": "robots * rooms * balls",
    "spanner": "spanners * nuts * locations",
    "delivery": "size * packages",
}
PRESETS: tuple[str, ...] = ("seed_doc", "safety_gen_code")


def spec_for(
    domain: str, overrides: dict[str, DifficultySpecConfig], preset: str = "seed_doc"
) -> DifficultySpec | None:
    """The configured spec of a domain, else the built-in one under `preset`, else None."""
    if domain in overrides:
        return DifficultySpec.from_config(domain, overrides[domain])
    spec = DEFAULT_SPECS.get(domain)
    if spec is None or preset in ("seed_doc", "formula"):
        return spec
    if preset != "safety_gen_code":
        raise ValueError(f"unknown difficulty preset {preset!r}; expected one of {list(PRESETS)}")
    return replace(spec, score=SAFETY_GEN_CODE_SCORES[domain])
