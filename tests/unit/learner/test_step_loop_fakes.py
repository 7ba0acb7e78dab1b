"""The step loop driven by in-process fakes of its four roles (no Ray, no model): call order, async overlap,
policy-version lag, filtering and refill, exactly-once scoring and the metrics record, in milliseconds.

The fakes stand in for the Ray actors (learner.driver.loop.Roles) so the driver's own logic is tested alone; the real
roles run through it in tests/integration/test_pipeline.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from learner.config.run import load_config
from learner.driver.loop import Roles, StepLoop
from reward_service.contracts import Completion, Score
from reward_service.scoring import Label

ROOT = Path(__file__).resolve().parents[3]
DOMAINS = ("ferry", "grippers")
BUCKETS = ("easy", "medium", "hard")


class FakeSampler:
    def __init__(self, events: list, batch_size: int) -> None:
        self.events, self.batch_size = events, batch_size

    def serve(self, step: int):
        self.events.append(("serve", step))
        batch = [{"sample_id": f"{DOMAINS[j % 2]}:{step}-{j}", "domain": DOMAINS[j % 2], "bucket": BUCKETS[j % 3],
                  "prompt": f"step {step} prompt {j}", "meta": {}} for j in range(self.batch_size)]
        return batch, {"sampler/step": float(step)}

    def refill(self, step: int, round_: int, domains: list[str]):
        self.events.append(("refill", step, round_, tuple(domains)))
        return [{"sample_id": f"{d}:refill-{step}-{round_}-{j}", "domain": d, "bucket": "hard",
                 "prompt": f"refill {step} {d}", "meta": {}} for j, d in enumerate(domains)]

    def observe(self, step: int, outcomes: list[dict]) -> None:
        self.events.append(("observe", step, len(outcomes)))

    def metrics(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        raise AssertionError("no resume in these tests")


class FakePending:
    def __init__(self, completions: list[Completion]) -> None:
        self.completions = completions

    def stream(self):
        half = len(self.completions) // 2  # two chunks that arrive out of order, as from two actors
        yield half, self.completions[half:]
        yield 0, self.completions[:half]

    def result(self) -> list[Completion]:
        return list(self.completions)


class FakeRollout:
    actors = [object(), object()]

    def __init__(self, events: list) -> None:
        self.events, self.version, self.busy = events, None, 0.0
        self.temperatures: list = []  # the temperature argument of each submit, in order

    def submit(self, prompts, ids, num_generations=None, policy_version=None, **kwargs) -> FakePending:
        assert policy_version == self.version  # the loop asks for the weights it pushed last, exactly
        self.temperatures.append(kwargs.pop("temperature", "not passed"))
        assert not kwargs
        self.events.append(("submit", ids[0], policy_version))
        self.busy += 0.5
        out = [Completion(sample_id=i, text=f"{p} #{k}", token_ids=(3, 4), logprobs=(-0.5, -0.5),
                          policy_version=policy_version, prompt_token_ids=(1, 2))
               for p, i in zip(prompts, ids, strict=True) for k in range(num_generations)]
        return FakePending(out)

    def update_weights(self, state, version: int) -> None:
        self.events.append(("push", version))
        self.version = version

    def timings(self) -> dict[str, float]:
        return {"generate_s": self.busy, "load_weights_s": 0.0, "calls": 0, "tokens": 10 * self.busy}

    def shutdown(self) -> None:
        pass


class FakePool:
    """Reward from the text: the k-th completion of a group gets k / G; `flat` domains score 0 (no signal)."""

    def __init__(self, events: list, g: int, flat: tuple[str, ...] = ()) -> None:
        self.events, self.g, self.flat, self.scored = events, g, flat, []

    def score(self, completions, samples) -> list[Score]:
        self.events.append(("score", len(completions)))
        by_id = {s["sample_id"]: s for s in samples}
        out = []
        for c in completions:
            self.scored.append((c.sample_id, c.text))
            k = int(c.text.rsplit("#", 1)[1])
            flat = by_id[c.sample_id]["domain"] in self.flat and "refill" not in c.sample_id
            out.append(Score(reward=0.0 if flat else k / self.g, label=Label.SUCCESS, sample_id=c.sample_id))
        return out

    def shutdown(self) -> None:
        pass


class FakeLearner:
    def __init__(self, events: list) -> None:
        self.events, self.version, self.trained = events, 0, []

    def train_step(self, samples) -> dict[str, float]:
        self.events.append(("train", len(samples)))
        self.trained.append(samples)
        self.version += 1
        return {"loss": 0.25}

    def adapter_state_handle(self):
        return self.version, {"weights of": self.version}

    def load(self, path, run_dir):
        raise AssertionError("no resume in these tests")

    def save(self, run_dir, step, extra, limit) -> str:
        self.events.append(("save", step))
        return ""

    def shutdown(self) -> None:
        pass


def _loop(tmp_path: Path, flat: tuple[str, ...] = (), **overrides: object):
    base = {"max_steps": 4, "save_steps": 100, "sampler.batch_size": 4, "rollout.num_generations": 4,
            "logging.progress_bar": "false", "logging.logging_steps": 1}
    base.update(overrides)
    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml", [f"{k}={v}" for k, v in base.items()])
    events: list = []
    pool = FakePool(events, cfg.rollout.num_generations, flat)
    roles = Roles(FakeSampler(events, cfg.sampler.batch_size), FakeLearner(events), FakeRollout(events), pool)
    loop = StepLoop(cfg, tmp_path, roles=roles)
    return loop, events, roles


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_sync_steps_run_in_order_on_policy(tmp_path: Path) -> None:
    loop, events, roles = _loop(tmp_path, mode="sync")
    loop.run()
    kinds = [e[0] for e in events]
    assert kinds[0] == "push"  # the learner's weights before the first rollout
    per_step = ["serve", "submit", "score", "score", "train", "push", "observe"]
    assert kinds[1:] == per_step * 4 + ["save"]
    assert [e[2] for e in events if e[0] == "submit"] == [0, 1, 2, 3]  # each rollout on the newest weights
    records = _records(tmp_path)
    assert [r["policy_version_lag"] for r in records] == [0, 0, 0, 0]
    assert [r["policy_version"] for r in records] == [1, 2, 3, 4]
    # every completion scored exactly once, and trained in prompt order whatever order the chunks came in
    assert len(roles.pool.scored) == len(set(roles.pool.scored)) == 4 * 4 * 4
    assert [s.advantage for s in roles.learner.trained[0][:4]] == pytest.approx([-1.1619, -0.3873, 0.3873, 1.1619],
                                                                                abs=1e-3)
    assert all(r["time/rollout"] >= 0 and r["time/reward"] >= 0 and "rollout/idle_ratio" in r for r in records)
    assert len(list((tmp_path / "samples").iterdir())) == 4


@pytest.mark.parametrize("k, lags", [(1, [0, 1, 1, 1, 1]), (2, [0, 1, 2, 2, 2]), (3, [0, 1, 2, 3, 3])])
def test_async_keeps_k_rollouts_ahead_and_lag_at_most_k(tmp_path: Path, k: int, lags: list[int]) -> None:
    loop, events, _ = _loop(tmp_path, mode="async", max_staleness=k, max_steps=5)
    loop.run()
    records = _records(tmp_path)
    assert [r["policy_version_lag"] for r in records] == lags
    assert [r["step"] for r in records] == [0, 1, 2, 3, 4]
    assert [e[1] for e in events if e[0] == "serve"] == [0, 1, 2, 3, 4]  # each batch served once, in order
    first_train = next(i for i, e in enumerate(events) if e[0] == "train")
    served_before = [e[1] for e in events[:first_train] if e[0] == "serve"]
    assert served_before == list(range(min(k, 4) + 1))  # steps 1..k submitted before step 0 learns


def test_groups_without_signal_are_filtered_and_refilled_with_their_domain(tmp_path: Path) -> None:
    loop, events, roles = _loop(tmp_path, flat=("grippers",), mode="sync", max_steps=1,
                                filter_zero_std_groups="true", max_refill_rounds=2)
    loop.run()
    assert [e for e in events if e[0] == "refill"] == [("refill", 0, 0, ("grippers", "grippers"))]
    (record,) = _records(tmp_path)
    assert record["frac_zero_std_groups"] == 0.5  # of the sampled batch
    assert (record["refill/rounds"], record["refill/groups"], record["refill/groups_with_signal"]) == (1, 2, 2)
    assert record["groups_trained"] == 4  # 2 ferry groups + 2 refilled grippers groups; flat ones dropped
    trained = roles.learner.trained[0]
    assert len(trained) == 4 * 4 and {s.group for s in trained} == {0, 2, 4, 5}


BUCKET_TEMPS = {"easy": 0.6, "medium": 0.9, "hard": 1.3}


def test_bucket_temperatures_follow_each_prompts_bucket_refills_included(tmp_path: Path) -> None:
    loop, events, roles = _loop(tmp_path, flat=("grippers",), mode="sync", max_steps=1,
                                filter_zero_std_groups="true", max_refill_rounds=2,
                                **{"rollout.bucket_temperatures": "{easy: 0.6, medium: 0.9, hard: 1.3}"})
    loop.run()
    batch_temps, refill_temps = roles.rollout.temperatures  # the batch's submit, then one refill round
    assert batch_temps == [BUCKET_TEMPS[BUCKETS[j % 3]] for j in range(4)] == [0.6, 0.9, 1.3, 0.6]
    assert refill_temps == [1.3, 1.3]  # the two refilled grippers problems are "hard"
    (record,) = _records(tmp_path)
    assert record["rollout/temperature_mean"] == pytest.approx((0.6 + 0.9 + 1.3 + 0.6 + 1.3 + 1.3) / 6)


def test_without_bucket_temperatures_no_per_prompt_list_is_passed(tmp_path: Path) -> None:
    loop, events, roles = _loop(tmp_path, flat=("grippers",), mode="async", max_steps=2,
                                filter_zero_std_groups="true", max_refill_rounds=1)
    loop.run()
    assert len(roles.rollout.temperatures) == 4  # two steps, each a batch and a refill round
    assert set(roles.rollout.temperatures) == {"not passed"}  # the call of before the switch existed
    assert all("rollout/temperature_mean" not in r for r in _records(tmp_path))
