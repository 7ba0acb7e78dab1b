"""DifficultySpec: the five domains' file names map to the seed's 5n + 3r + 2o; custom specs and expressions."""

from __future__ import annotations

import pickle

import pytest

from sampler.config import DifficultySpecConfig
from sampler.difficulty import DEFAULT_SPECS, DifficultySpec, Expression, spec_for

CASES = [
    # domain, file, params, (n, r, o)
    ("blocksworld", "bw_ops4_n5_seed17.pddl", {"ops": 4, "blocks": 5, "seed": 17}, (5, 1, 0)),
    ("blocksworld", "problems/bw_ops3_n6_seed600537.pddl", {"ops": 3, "blocks": 6, "seed": 600537}, (6, 1, 0)),
    ("ferry", "ferry-l4-c3-s9.pddl", {"locations": 4, "cars": 3, "seed": 9}, (3, 1, 4)),
    ("grippers", "grippers-n1-r4-o3-s2.pddl", {"robots": 1, "rooms": 4, "balls": 3, "seed": 2}, (3, 1, 4)),
    ("spanner", "spanner-s3-n2-l5-s1.pddl", {"spanners": 3, "nuts": 2, "locations": 5, "seed": 1}, (2, 1, 8)),
    ("delivery", "delivery-s4-p3-seed7.pddl", {"size": 4, "packages": 3, "seed": 7}, (3, 1, 16)),
]


@pytest.mark.parametrize(("domain", "name", "params", "nro"), CASES)
def test_default_specs_follow_the_seed_formula(domain, name, params, nro):
    spec = DEFAULT_SPECS[domain]
    assert spec.parse(name) == params
    n, r, o = nro
    assert spec.score_of(params) == 5 * n + 3 * r + 2 * o


def test_grippers_mapping_is_the_seeds():
    # grippers-n1-r4-o3: robots 1 -> r, rooms 4 -> o, balls 3 -> n
    spec = DEFAULT_SPECS["grippers"]
    assert spec.score_of(spec.parse("grippers-n1-r4-o3-s0")) == 5 * 3 + 3 * 1 + 2 * 4
    assert spec.score_of(spec.parse("grippers-n2-r4-o3-s0")) == 5 * 3 + 3 * 2 + 2 * 4


def test_unmatched_name_and_defaults():
    spec = DEFAULT_SPECS["ferry"]
    assert spec.parse("grippers-n1-r4-o3-s0.pddl") is None
    assert spec.default_params() == {"locations": 1, "cars": 1, "seed": 1}


def test_custom_spec_from_config_and_override():
    cfg = DifficultySpecConfig(pattern=r"maze-w(?P<w>\d+)-h(?P<h>\d+)", n="w*h", r="1", o="0", score="n + 10*r")
    spec = spec_for("maze", {"maze": cfg})
    assert spec.score_of(spec.parse("maze-w3-h4.pddl")) == 12 + 10
    assert spec_for("ferry", {}) is DEFAULT_SPECS["ferry"]
    assert spec_for("maze", {}) is None
    assert pickle.loads(pickle.dumps(spec)).score_of({"w": 2, "h": 2}) == 14


def test_bad_specs_are_rejected():
    with pytest.raises(ValueError, match=r"names \['x'\], not groups"):
        DifficultySpec("d", r"a(?P<k>\d+)", n="x")
    with pytest.raises(ValueError, match="score 'n \\+ q' names unknown"):
        DifficultySpec("d", r"a(?P<k>\d+)", n="k", score="n + q")
    with pytest.raises(ValueError, match="only \\+ - \\* /"):
        Expression("__import__('os')")
    with pytest.raises(ValueError, match="bad difficulty expression"):
        Expression("1 +")
    assert Expression("-a + 2*(b - 1)/4")({"a": 1, "b": 3}) == 0.0
