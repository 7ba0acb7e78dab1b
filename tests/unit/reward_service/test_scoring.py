"""RewardScorer on the real validators (VAL binary and native) and the PDDL fixtures: labels, rewards, order."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reward_service.config import RewardConfig
from reward_service.contracts import Completion, Score
from reward_service.dense import reward_for
from reward_service.native import NativeValidator
from reward_service.result import Label, ValidationResult
from reward_service.scoring import RewardScorer, deadline

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pddl"
DOMAINS = ("blocksworld", "delivery", "ferry", "grippers", "spanner")
EXPECTED = {  # fixture plan tag (p01.<tag>.plan) prefix -> label
    "valid": Label.SUCCESS,
    "format": Label.PLAN_FORMAT_ERROR,
    "empty": Label.EMPTY_PLAN,
    "goal": Label.GOAL_NOT_SATISFIED,
    "atend": Label.GOAL_NOT_SATISFIED,  # VAL reports a failed `at end` constraint as a goal failure
    "precond": Label.PRECONDITION_VIOLATION,
    "safety": Label.SAFETY_CONSTRAINTS_VIOLATION,
}


def sample(domain: str, sid: str | None = None, **meta) -> dict:
    meta = {"problem_file": f"{domain}/p01.pddl", "domain_file": f"{domain}/domain.pddl", **meta}
    return {"sample_id": sid or f"{domain}:1", "domain": domain, "meta": meta}


def fixture_plans() -> list[tuple[str, Path, Label]]:
    cases = []
    for domain in DOMAINS:
        for plan in sorted((FIXTURES / domain).glob("p01.*.plan")):
            tag = plan.name.split(".")[1]
            label = next((lab for prefix, lab in EXPECTED.items() if tag.startswith(prefix)), None)
            if label is not None:
                cases.append((domain, plan, label))
    return cases


CASES = fixture_plans()


class SlowNativeValidator(NativeValidator):
    """A real validator made deliberately slow, to run past the per-plan timeout."""

    def validate(self, domain_file, problem_file, plan):
        time.sleep(5)
        return super().validate(domain_file, problem_file, plan)

    def validate_many(self, domain_file, problem_file, plans):
        time.sleep(5)
        return super().validate_many(domain_file, problem_file, plans)


class CrashingNativeValidator(NativeValidator):
    """A real validator that raises, as a validator with a bug would."""

    def validate_many(self, domain_file, problem_file, plans):
        raise RuntimeError("simulator bug")


@pytest.fixture(scope="module", params=["val", "native"])
def scorer(request: pytest.FixtureRequest) -> RewardScorer:
    return RewardScorer(RewardConfig(validator=request.param), FIXTURES)


def test_fixture_corpus_is_there() -> None:
    assert len(CASES) >= 20, "expected the PDDL fixtures of tests/fixtures/pddl (H1)"


def test_every_fixture_plan_gets_its_label_and_the_table_reward(scorer: RewardScorer) -> None:
    completions = [Completion(f"{d}:1", plan.read_text()) for d, plan, _ in CASES]
    samples = [sample(d) for d in DOMAINS]
    scores = scorer.score(completions, samples)
    assert len(scores) == len(CASES)
    for (domain, plan, label), score in zip(CASES, scores, strict=True):
        assert score.label is label, f"{plan.name} in {domain}: {score}"
        assert score.sample_id == f"{domain}:1" and score.domain == domain
        if label is not Label.EMPTY_PLAN and label is not Label.PLAN_FORMAT_ERROR:
            assert score.validator == scorer.config.validator
        again = ValidationResult(
            label=score.label,
            plan_length=score.plan_length,
            failed_step=score.failed_step,
            goals_satisfied=score.goals_satisfied,
            goals_total=score.goals_total,
        )
        assert score.reward == pytest.approx(reward_for(again, score.reference_length, scorer.config))
        assert -1.0 <= score.reward <= 1.0


def test_partial_rewards_on_ferry(scorer: RewardScorer) -> None:
    ferry = FIXTURES / "ferry"
    texts = [(ferry / f"p01.{t}.plan").read_text() for t in ("goal", "precond", "valid")]
    goal, precond, valid = scorer.score([Completion("ferry:1", t) for t in texts], [sample("ferry")])
    assert goal.goals_total == 2 and goal.reward == pytest.approx(-0.3 + 0.3 * goal.goals_satisfied / 2)
    assert precond.failed_step == 3 and precond.reference_length is None  # no .soln beside p01: its own length
    assert precond.reward == pytest.approx(-0.6 + 0.3 * 3 / precond.plan_length)
    assert valid.reward == 1.0


def test_reference_length_from_meta_is_p_only_when_configured(scorer: RewardScorer) -> None:
    text = (FIXTURES / "ferry" / "p01.precond.plan").read_text()
    (default,) = scorer.score([Completion("f", text)], [sample("ferry", "f", reference_plan_length=12)])
    assert default.reference_length is None  # plan_size, the seed's: the gold length is not read
    assert default.reward == pytest.approx(-0.6 + 0.3 * 3 / default.plan_length)
    by_gold = RewardScorer(scorer.config.model_copy(update={"progress_denominator": "reference_length"}),
                           scorer.data_root, validator=scorer.validator)
    (score,) = by_gold.score([Completion("f", text)], [sample("ferry", "f", reference_plan_length=12)])
    assert score.reference_length == 12
    assert score.reward == pytest.approx(-0.6 + 0.3 * 3 / 12)


def test_safety_score_carries_the_seeds_step_and_the_state_index(scorer: RewardScorer) -> None:
    text = (FIXTURES / "blocksworld" / "p01.safety-amo.plan").read_text()  # state 3 breaks at-most-once
    (score,) = scorer.score([Completion("b", text)], [sample("blocksworld", "b")])
    assert (score.label, score.failed_step, score.violation_state_index) == (Label.SAFETY_CONSTRAINTS_VIOLATION, 4, 3)
    assert score.reward == pytest.approx(-0.9 + 0.3 * 4 / 6)


def test_chat_transcript_is_extracted_before_validation(scorer: RewardScorer) -> None:
    plan = (FIXTURES / "ferry" / "p01.valid.plan").read_text()
    text = f"<|im_start|>user\nplan?<|im_end|>\n<|im_start|>assistant\n<think>hm</think>\nPlan:\n```\n{plan}```\nDone."
    (score,) = scorer.score([Completion("ferry:1", text)], [sample("ferry")])
    assert score.label is Label.SUCCESS
    assert score.dropped_lines == 1 and score.trailing_text.endswith("Done.")


def test_order_follows_the_completions_across_problems(scorer: RewardScorer) -> None:
    picks = [("ferry", "valid"), ("grippers", "goal"), ("ferry", "precond"), ("blocksworld", "valid")] * 3
    completions = [Completion(f"{d}:1", (FIXTURES / d / f"p01.{t}.plan").read_text()) for d, t in picks]
    scores = scorer.score(completions, [sample(d) for d in DOMAINS])
    assert [(s.domain, s.label) for s in scores] == [(d, EXPECTED[t]) for d, t in picks]


def test_oversized_completion_is_a_format_error_without_the_validator() -> None:
    scorer = RewardScorer(RewardConfig(max_completion_bytes=64), FIXTURES, validator=CrashingNativeValidator())
    (score,) = scorer.score([Completion("ferry:1", "(board c0 l0)\n" * 10)], [sample("ferry")])
    assert (score.label, score.reward, score.validator) == (Label.PLAN_FORMAT_ERROR, -1.0, "extract")


def test_slow_validation_times_out_to_none_and_is_counted() -> None:
    scorer = RewardScorer(RewardConfig(validator="native", timeout_s=0.2), FIXTURES, validator=SlowNativeValidator())
    plan = (FIXTURES / "ferry" / "p01.valid.plan").read_text()
    t0 = time.perf_counter()
    scores = scorer.score([Completion("ferry:1", plan)] * 2, [sample("ferry")])
    assert time.perf_counter() - t0 < 3.0  # 0.4 s batch deadline + 2 x 0.2 s, not 3 x 5 s of sleeping
    assert all(s.reward is None and s.timed_out and s.label is Label.VALIDATOR_ERROR for s in scores)
    assert scorer.stats.timeouts == 2


def test_crashing_validator_gives_none_with_the_reason() -> None:
    scorer = RewardScorer(RewardConfig(validator="native"), FIXTURES, validator=CrashingNativeValidator())
    plan = (FIXTURES / "ferry" / "p01.valid.plan").read_text()
    (score,) = scorer.score([Completion("ferry:1", plan)], [sample("ferry")])
    assert score.reward is None and not score.timed_out
    assert score.error == "RuntimeError: simulator bug"
    assert scorer.stats.validator_errors == 1


def test_cross_check_runs_both_validators_and_they_agree_on_the_fixtures() -> None:
    scorer = RewardScorer(RewardConfig(validator="val", cross_check_fraction=1.0), FIXTURES)
    completions = [Completion(f"{d}:1", plan.read_text()) for d, plan, _ in CASES]
    scorer.score(completions, [sample(d) for d in DOMAINS])
    validated = sum(1 for _, _, label in CASES if label is not Label.EMPTY_PLAN)
    assert scorer.stats.cross_checked == validated
    assert scorer.stats.disagreements == 0


def test_bad_samples_fail_early_with_the_path(tmp_path: Path) -> None:
    scorer = RewardScorer(RewardConfig(validator="native"), FIXTURES)
    with pytest.raises(ValueError, match="no sample with sample_id 'x:9' for completion 0"):
        scorer.score([Completion("x:9", "(a)")], [sample("ferry")])
    escaping = sample("ferry", problem_file="../../etc/passwd")
    with pytest.raises(ValueError, match="meta.problem_file '../../etc/passwd' escapes the data root"):
        scorer.score([Completion("ferry:1", "(a)")], [escaping])


def test_a_file_gone_since_the_preflight_scores_none_naming_it_and_the_rest_is_scored() -> None:
    """A missing file used to escape pool.score and end the run (issue 19 item 2)."""
    scorer = RewardScorer(RewardConfig(validator="native"), FIXTURES)
    gone = {**sample("ferry", domain_file="ferry/nope.pddl"), "sample_id": "ferry:gone"}
    fine = sample("ferry")
    plan = "(board car1 loc1)"
    scores = scorer.score([Completion("ferry:gone", plan), Completion(fine["sample_id"], plan),
                           Completion("ferry:gone", "no plan here")], [gone, fine])
    assert [s.sample_id for s in scores] == ["ferry:gone", fine["sample_id"], "ferry:gone"]
    for missing in (scores[0], scores[2]):
        assert missing.reward is None and missing.label is Label.VALIDATOR_ERROR
        assert "meta.domain_file 'ferry/nope.pddl' not found under data root" in missing.error
        assert missing.validator != "extract"  # counts toward reward.max_none_steps
    assert scores[1].reward is not None


def test_score_round_trips_to_json_ready_dict() -> None:
    score = Score(reward=None, label=Label.VALIDATOR_ERROR, sample_id="a", error="x")
    assert score.to_dict()["label"] == "validator_error" and score.to_dict()["reward"] is None


def test_deadline_interrupts_python_code_on_the_main_thread() -> None:
    from reward_service.scoring import ValidationTimeout

    with pytest.raises(ValidationTimeout, match="ran over 0.1 s"), deadline(0.1) as enforced:
        assert enforced
        time.sleep(2)
