"""The all-None guard: a domain whose validator always fails stops the run after max_none_steps, named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from learner.driver.none_guard import AllNoneRewardsError, NoneRewardGuard
from reward_service.config import RewardConfig
from reward_service.contracts import Completion
from reward_service.scoring import RewardScorer

THEIRS = Path(__file__).resolve().parents[2] / "fixtures" / "safety_gen"


class _S:
    def __init__(self, reward, validator="native", error=None):
        self.reward, self.validator, self.error = reward, validator, error


def _samples(*domains):
    return [{"domain": d, "meta": {"domain_file": f"pddl/{d}/domain.pddl", "problem_file": f"pddl/{d}/p.pddl"}}
            for d in domains]


def test_counts_consecutive_all_none_steps_per_domain_and_resets_on_a_number():
    guard = NoneRewardGuard(3)
    samples = _samples("ferry", "ferry", "spanner", "spanner")
    guard.update(0, samples, [_S(None), _S(None), _S(1.0), _S(None)])
    guard.update(1, samples, [_S(None), _S(None, "extract"), _S(None), _S(None)])
    guard.update(2, samples, [_S(-1.0, "extract"), _S(-1.0, "extract"), _S(None), _S(None)])  # ferry: unchanged
    assert guard.counts == {"ferry": 2, "spanner": 2}
    with pytest.raises(AllNoneRewardsError, match=r"^domain 'spanner': .*\(1-3; .*Last validator error: boom;"):
        guard.update(3, samples, [_S(None), _S(0.5), _S(None), _S(None, error="boom")])  # spanner's 3rd
    assert guard.counts["ferry"] == 0  # a number in step 3 reset it


def test_the_error_names_domain_last_validator_error_and_files():
    guard = NoneRewardGuard(2)
    samples = _samples("spanner")
    guard.update(4, samples, [_S(None, error="first")])
    with pytest.raises(AllNoneRewardsError) as err:
        guard.update(5, samples, [_S(None, error="ValueError: broken")])
    assert str(err.value) == (
        "domain 'spanner': every completion that reached the validator scored None for 2 consecutive steps "
        "(4-5; reward.max_none_steps=2), so it trains on nothing. Last validator error: ValueError: broken; "
        "files: domain 'pddl/spanner/domain.pddl', problem 'pddl/spanner/p.pddl'")


def test_zero_turns_the_guard_off():
    guard = NoneRewardGuard(0)
    for step in range(10):
        guard.update(step, _samples("ferry"), [_S(None)])


def test_a_real_scorer_on_a_domain_that_never_parses_stops_after_max_none_steps(tmp_path):
    # the pre-flight is what stops such data at the door (check_pddl); this is the guard behind it
    repo = tmp_path / "repo"
    shutil.copytree(THEIRS, repo)
    domain = repo / "pddl3/delivery/domain3.pddl"
    domain.write_text(domain.read_text().replace("(:action drop", "(:action drop (", 1))
    samples = []
    for d in ("delivery", "grippers"):
        rec = json.loads((repo / f"data/grpo/{d}.jsonl").read_text().splitlines()[0])
        plan = (repo / rec["meta"]["problem_file"]).with_suffix(".soln").read_text()
        samples.append({**rec, "domain": d, "sample_id": f"{d}:0", "plan": plan})
    scorer = RewardScorer(RewardConfig(validator="native"), repo)
    completions = [Completion(sample_id=s["sample_id"], text=s["plan"]) for s in samples for _ in range(2)]
    rows = [s for s in samples for _ in range(2)]
    guard = NoneRewardGuard(RewardConfig().max_none_steps)
    for step in range(2):
        scores = scorer.score(completions, samples)
        assert [sc.reward for sc in scores] == [None, None, 1.0, 1.0]
        guard.update(step, rows, scores)
    with pytest.raises(AllNoneRewardsError, match=r"^domain 'delivery': .* for 3 consecutive steps \(0-2; .*"
                       rf"Last validator error: .*{domain}:20: .*files: domain 'pddl3/delivery/domain3.pddl'"):
        guard.update(2, rows, scorer.score(completions, samples))
