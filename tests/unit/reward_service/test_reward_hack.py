"""Issue 19's reward hack, end to end: a step with a case-folding character (U+212A, U+017F, U+0130, U+0131) was
dropped by extraction, so an invalid plan scored +1.0 through `--from-completion`, `trl_reward` and training,
while the same text as a plan file scored -1. Every path now says plan_format_error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reward_service.config import RewardConfig
from reward_service.trl import make_trl_reward
from reward_service.validate import main

FERRY = Path(__file__).resolve().parents[2] / "fixtures" / "pddl" / "ferry"
VALID = (FERRY / "p01.valid.plan").read_text().splitlines()
META = {"problem_file": "ferry/p01.pddl", "domain_file": "ferry/domain.pddl"}
# (line index, bad step): read as the ASCII step it folds to it breaks the plan; dropped, the valid plan is left.
HACKS = {
    "U+212A": (3, "(debar\u212a c0 l1)"),  # a second debark: precondition violation
    "U+017F": (1, "(\u017fail l0 l2)"),  # sail to l2: breaks (always (not (at-ferry l2)))
    "U+0130": (1, "(sa\u0130l l0 l2)"),
    "U+0131": (1, "(sa\u0131l l0 l2)"),
}


def _hacked(name: str) -> str:
    at, bad = HACKS[name]
    return "\n".join([*VALID[:at], bad, *VALID[at:]]) + "\n"


@pytest.mark.parametrize("name", sorted(HACKS))
def test_the_hack_scores_minus_one_on_every_path(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text = _hacked(name)
    plan = tmp_path / "hack.plan"
    plan.write_text(text, encoding="utf-8")
    args = [str(FERRY / "domain.pddl"), str(FERRY / "p01.pddl"), str(plan), "--validator", "native", "--json"]
    records = []
    for extra in ([], ["--from-completion"]):
        assert main([*args, *extra]) == 1
        records.append(json.loads(capsys.readouterr().out.splitlines()[0]))
    assert [(r["label"], r["reward"]) for r in records] == [("plan_format_error", -1.0)] * 2
    reward = make_trl_reward(FERRY.parent, RewardConfig(validator="native"))
    chat = [{"role": "assistant", "content": "Here is the plan:\n" + text}]
    assert reward(["p", "p"], [text, chat], meta=[META, META]) == [-1.0, -1.0]
    assert {s.label.value for s in reward.last_scores} == {"plan_format_error"}
