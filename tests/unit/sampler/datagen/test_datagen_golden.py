"""Golden build: a fixed-seed dataset (five domains, every prompt style, safety constraints) hashes as recorded.

The fixture holds, per file, its sha256 and an 8-hex hash of each line, so a failure names the first
differing file and line. It was recorded from the code before datagen moved onto reward_service.pddl's
model; regenerate it only for an intended change of the data: PDDL_GRPO_WRITE_GOLDEN=1 pytest this file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from sampler.datagen import builder

GOLDEN = Path(__file__).resolve().parents[3] / "fixtures" / "datagen_golden.json"
# (prompt style, constraints mode): mix gives constrained and unconstrained problems; on gives every family
BUILDS = (("full", "mix"), ("compact", "on"), ("symbolized", "on"))
ARGS = dict(per_domain=6, sizes="tiny", test_fraction=0.34, seed=7)


def _line_hashes(data: bytes) -> str:
    return "".join(hashlib.sha256(line).hexdigest()[:8] for line in data.splitlines(keepends=True))


def _digest(tree: dict[str, bytes]) -> dict[str, dict[str, str]]:
    return {p: {"sha256": hashlib.sha256(b).hexdigest(), "lines": _line_hashes(b)} for p, b in sorted(tree.items())}


def _first_difference(want: dict[str, dict[str, str]], got: dict[str, dict[str, str]], tree) -> str | None:
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        return f"files missing {missing[:5]}, unexpected {extra[:5]}"
    for path in sorted(want):
        if want[path]["sha256"] == got[path]["sha256"]:
            continue
        w, g = want[path]["lines"], got[path]["lines"]
        lines = tree[path].splitlines(keepends=True)
        for i in range(max(len(w), len(g)) // 8):
            if w[8 * i:8 * i + 8] != g[8 * i:8 * i + 8]:
                text = lines[i].decode(errors="replace")[:300] if i < len(lines) else "<no such line>"
                return f"{path} differs first at line {i + 1}: now {text!r}"
        return f"{path} differs (same lines, e.g. a missing final newline)"
    return None


def test_fixed_seed_build_matches_the_recorded_hashes(tmp_path, monkeypatch, data_tree):
    # the bytes are the point here; the builder tests run VAL on gold plans
    monkeypatch.setattr(builder, "check_built", lambda b: b)
    tree: dict[str, bytes] = {}
    for style, constraints in BUILDS:
        builder.build_dataset(tmp_path / style, prompt_style=style, constraints=constraints, **ARGS)
        tree |= {f"{style}/{p}": b for p, b in data_tree(tmp_path / style).items()}
    got = _digest(tree)
    if os.environ.get("PDDL_GRPO_WRITE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps({"builds": BUILDS, "args": ARGS, "files": got}, indent=0) + "\n")
        pytest.skip(f"wrote {GOLDEN}")
    want = json.loads(GOLDEN.read_text())
    assert (tuple(map(tuple, want["builds"])), want["args"]) == (BUILDS, ARGS), "fixture of other build arguments"
    assert (why := _first_difference(want["files"], got, tree)) is None, why
