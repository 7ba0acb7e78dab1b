"""BalancedBatchStream: exact balance, weights per phase, no replacement, determinism, resume, errors."""

from __future__ import annotations

import json
import logging
from collections import Counter

import numpy as np
import pytest

from sampler.config import BUCKETS, SamplerConfig
from sampler.stream import BalancedBatchStream
from sampler.synthetic import DOMAINS, write_synthetic_dataset


def _stream(root, **kw) -> BalancedBatchStream:
    base = {"batch_size": 10, "max_steps": 1000, "seed": 3}
    return BalancedBatchStream.from_config(SamplerConfig(data_root=str(root), **{**base, **kw}))


def test_every_batch_is_exactly_balanced_over_1000_steps(data_root):
    stream = _stream(data_root)
    first_domains = Counter()
    for step in range(1000):
        batch = stream.batch(step)
        assert len(batch) == 10
        assert Counter(s["domain"] for s in batch) == dict.fromkeys(DOMAINS, 2)
        first_domains[batch[0]["domain"]] += 1
    assert len(first_domains) == len(DOMAINS)  # shuffled inside the batch, not grouped by domain


def test_data_parallel_shards_are_each_balanced(data_root):
    stream = _stream(data_root, batch_size=20, data_parallel_size=2)
    for step in range(200):
        for shard in stream.shards(stream.batch(step)):
            assert Counter(s["domain"] for s in shard) == dict.fromkeys(DOMAINS, 2)


def test_sample_fields_follow_the_contract(data_root):
    sample = _stream(data_root).batch(0)[0]
    domain, line = sample["sample_id"].split(":")
    assert domain == sample["domain"] and int(line) >= 0
    assert sample["meta"]["scenario"] == domain
    assert not sample["meta"]["problem_file"].startswith("/")  # meta paths stay relative
    assert sample["bucket"] in BUCKETS and isinstance(sample["difficulty_score"], float)
    assert set(sample["difficulty_params"]) >= {"seed"}
    with open(data_root / f"{domain}.jsonl") as f:
        assert json.loads(f.readlines()[int(line)])["prompt"] == sample["prompt"]


def test_bucket_draws_follow_each_phases_weights(data_root):
    stream = _stream(data_root, batch_size=20)
    counts = {phase: Counter() for phase in range(3)}
    for step in range(1000):
        phase = 0 if step < 300 else 1 if step < 700 else 2
        counts[phase].update(s["bucket"] for s in stream.batch(step))
    expected = {0: (0.7, 0.25, 0.05), 1: (0.4, 0.4, 0.2), 2: (0.2, 0.4, 0.4)}
    for phase, c in counts.items():
        total = sum(c.values())
        observed = np.array([c[b] for b in BUCKETS], dtype=float)
        exp = np.array(expected[phase]) * total
        chi2 = float(((observed - exp) ** 2 / exp).sum())
        assert chi2 < 13.8, (phase, observed / total)  # chi-square, 2 dof, p = 0.001


def test_pools_are_drawn_without_replacement_and_reshuffled(data_root):
    stream = _stream(data_root, schedule="fixed", fixed_weights={"easy": 1, "medium": 0, "hard": 0})
    pool = len(stream.tables["ferry"].members["easy"])
    ids = [s["sample_id"] for step in range(pool) for s in stream.batch(step) if s["domain"] == "ferry"]
    first, second = ids[:pool], ids[pool: 2 * pool]
    assert len(set(first)) == pool and set(second) == set(first) and second != first


def test_same_seed_same_stream_other_seed_other_stream(data_root):
    a = [s["sample_id"] for t in range(20) for s in _stream(data_root).batch(t)]
    b = [s["sample_id"] for t in range(20) for s in _stream(data_root).batch(t)]
    c = [s["sample_id"] for t in range(20) for s in _stream(data_root, seed=4).batch(t)]
    assert a == b != c


@pytest.mark.parametrize("schedule", ["step", "adaptive"])
def test_resume_mid_run_yields_the_uninterrupted_stream(data_root, schedule):
    def feedback(stream, batch):
        stream.observe([{**{k: s[k] for k in ("sample_id", "domain", "bucket")}, "reward": 1.0,
                         "label": "success_plans" if s["difficulty_score"] % 2 else "goal_not_satisfied"}
                        for s in batch])

    kw = {"schedule": schedule, "max_steps": 300, "adaptive_min_outcomes": 2}
    full = _stream(data_root, **kw)
    uninterrupted = []
    for t in range(300):
        uninterrupted.append([s["sample_id"] for s in full.batch(t)])
        feedback(full, full.batch(t))
    first = _stream(data_root, **kw)
    for t in range(137):
        feedback(first, first.batch(t))
    state = json.loads(json.dumps(first.state_dict()))  # checkpoints hold it as JSON
    resumed = _stream(data_root, **kw)
    resumed.load_state_dict(state)
    assert [s["sample_id"] for s in resumed.batch(136)] == uninterrupted[136]  # the last batch, again
    for t in range(137, 300):
        assert [s["sample_id"] for s in resumed.batch(t)] == uninterrupted[t]
        feedback(resumed, resumed.batch(t))


def test_steps_only_move_forward_and_may_repeat(data_root):
    stream = _stream(data_root)
    assert stream.batch(5) == stream.batch(5)
    stream.batch(9)
    with pytest.raises(ValueError, match="step 7 was already served; the stream is at step 9"):
        stream.batch(7)


def test_divisibility_errors(data_root):
    with pytest.raises(ValueError, match=r"^batch_size \(10\) must be divisible by num_domains \(4\) "):
        _stream(data_root, domains=["ferry", "grippers", "spanner", "delivery"])
    assert _stream(data_root, data_parallel_size=2).per_shard == 1  # fine: 10 = 5 domains x 2 shards
    with pytest.raises(ValueError, match=r"^batch_size \(10\) must be divisible by num_domains \(5\) x "
                                         r"data_parallel_size \(3\) = 15 so that every data-parallel shard"):
        _stream(data_root, data_parallel_size=3)


def test_state_from_other_data_is_rejected(data_root):
    state = _stream(data_root).state_dict()
    with pytest.raises(ValueError, match="sampler state does not fit this data/config: batch_size was 10, is 20"):
        _stream(data_root, batch_size=20).load_state_dict(state)
    with pytest.raises(ValueError, match="pools was"):
        _stream(data_root, domains=["ferry"], batch_size=10).load_state_dict(state)


def test_metrics_and_curriculum_log_line(data_root, caplog):
    stream = _stream(data_root, logging_steps=300)
    with caplog.at_level(logging.INFO, logger="sampler.stream"):
        for t in range(301):
            stream.batch(t)
    lines = [r.getMessage() for r in caplog.records if "curriculum weights" in r.getMessage()]
    assert lines == ["Step 0/1000: curriculum weights = {'easy': 0.7, 'medium': 0.25, 'hard': 0.05}",
                     "Step 300/1000: curriculum weights = {'easy': 0.4, 'medium': 0.4, 'hard': 0.2}"]
    m = stream.metrics()
    assert m["sampler/step"] == 300 and all(m[f"sampler/domain/{d}"] == 2 for d in DOMAINS)
    assert sum(m[f"sampler/bucket/{b}"] for b in BUCKETS) == 10
    assert m["curriculum/weight/ferry/hard"] == pytest.approx(0.2)


def test_tied_domain_falls_back_and_stays_balanced(tmp_path, caplog):
    write_synthetic_dataset(tmp_path, {"ferry": 30, "grippers": 30}, seed=0, prompt_chars=10)
    lines = (tmp_path / "grippers.jsonl").read_text().splitlines()
    same = tmp_path / "problems/grippers/grippers-n1-r4-o3-s1.pddl"
    same.write_text("(define (problem tied) (:domain grippers) (:goal (and)))")
    tied = [json.dumps({**json.loads(x), "meta": {**json.loads(x)["meta"], "problem_file": str(same.relative_to(
        tmp_path))}}) for x in lines]
    (tmp_path / "grippers.jsonl").write_text("\n".join(tied) + "\n")
    with caplog.at_level(logging.WARNING):
        stream = BalancedBatchStream.from_config(SamplerConfig(data_root=str(tmp_path), batch_size=4, seed=1))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("Domain grippers:")
    for t in range(100):
        assert Counter(s["domain"] for s in stream.batch(t)) == {"ferry": 2, "grippers": 2}


def test_refill_draws_the_asked_domains_without_changing_the_batch_stream(data_root):
    plain, refilled = _stream(data_root), _stream(data_root)
    asked = ["ferry", "ferry", "spanner"]
    seen_refill: list[str] = []
    for step in range(50):
        batch = refilled.batch(step)
        extra = refilled.refill(step, 0, asked)
        assert [s["domain"] for s in extra] == asked
        assert refilled.batch(step) == batch  # asking for the step again still gives its batch
        seen_refill.extend(s["sample_id"] for s in extra)
        assert [s["sample_id"] for s in plain.batch(step)] == [s["sample_id"] for s in batch]
    # refills read each (domain, bucket) pool without replacement too: ferry's buckets hold 48/48/24
    # problems, and 30 draws at weights 0.7/0.25/0.05 exhaust none of them, so they repeat none
    ferry = [i for i in seen_refill if i.startswith("ferry:")]
    assert len(ferry) == 100 and len(set(ferry[:30])) == 30


def test_refill_of_the_previous_step_serves_async_mode(data_root):
    ahead, behind = _stream(data_root), _stream(data_root)
    ahead.batch(0)
    ahead.batch(1)  # async: step 1 is served before step 0 is scored and refilled
    behind.batch(0)
    assert [s["sample_id"] for s in ahead.refill(0, 0, ["ferry", "spanner"])] == \
        [s["sample_id"] for s in behind.refill(0, 0, ["ferry", "spanner"])]
    assert ahead.batch(1) == ahead.batch(1)


def test_refill_is_deterministic_and_resumable(data_root):
    a, b = _stream(data_root), _stream(data_root)
    for stream in (a, b):
        stream.batch(0)
        stream.refill(0, 0, ["grippers"])
    state = json.loads(json.dumps(a.state_dict()))
    a.batch(1)
    expected = [s["sample_id"] for s in a.refill(1, 1, ["grippers", "delivery"])]
    resumed = _stream(data_root)
    resumed.load_state_dict(state)
    resumed.batch(1)
    assert [s["sample_id"] for s in resumed.refill(1, 1, ["grippers", "delivery"])] == expected
    b.batch(1)
    assert [s["sample_id"] for s in b.refill(1, 1, ["grippers", "delivery"])] == expected


def test_refill_errors_name_the_problem(data_root):
    stream = _stream(data_root)
    stream.batch(3)
    with pytest.raises(ValueError, match="refill of step 4: the stream has served only up to step 3"):
        stream.refill(4, 0, ["ferry"])
    with pytest.raises(ValueError, match=r"refill: unknown domains \['logistics'\]"):
        stream.refill(3, 0, ["logistics"])
