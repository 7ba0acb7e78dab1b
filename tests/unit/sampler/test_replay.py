"""Replay of problems whose groups had reward variance: entry, exit, capacity, balance, determinism, resume."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from pydantic import ValidationError

from sampler.config import SamplerConfig
from sampler.replay import ReplayBuffer, group_signals
from sampler.stream import BalancedBatchStream
from sampler.synthetic import DOMAINS

G = 4  # completions per group
HARD = {"easy": 0, "medium": 0, "hard": 1}


def _stream(root, **kw) -> BalancedBatchStream:
    base = {"batch_size": 10, "max_steps": 1000, "seed": 3}
    return BalancedBatchStream.from_config(SamplerConfig(data_root=str(root), **{**base, **kw}))


def _outcomes(samples, rewards):
    """G consecutive completions per sample, as the driver sends them; rewards(sample) -> G rewards."""
    return [{"sample_id": s["sample_id"], "domain": s["domain"], "bucket": s["bucket"], "reward": r,
             "label": "success_plans" if r == 1.0 else "goal_not_satisfied"} for s in samples for r in rewards(s)]


def _flat(samples):
    return [(s["sample_id"], s.get("replayed", False)) for s in samples]


def test_both_switches_off_serve_todays_batches_whatever_the_outcomes(data_root):
    plain = _stream(data_root)
    explicit = _stream(data_root, replay_fraction=0.0, replay_buckets=["easy", "hard"], domain_weighting="balanced")
    for t in range(60):
        batch = explicit.batch(t)
        assert batch == plain.batch(t) and not any("replayed" in s for s in batch)
        explicit.observe(_outcomes(batch, lambda s: [1.0, 0.0, 0.0, 0.0]))  # signal everywhere: ignored when off
    assert len(explicit.replay) == 0
    assert not any(k.startswith(("sampler/replay", "sampler/domain_weight")) for k in explicit.metrics())


def test_a_hard_problem_with_signal_is_replayed_until_its_group_has_none(data_root):
    stream = _stream(data_root, schedule="fixed", fixed_weights=HARD, replay_fraction=1.0)
    first = stream.batch(0)
    target = next(s for s in first if s["domain"] == "ferry")
    stream.observe(_outcomes(first, lambda s: [1.0, 0.0, 0.0, 1.0] if s is target else [0.0] * G))
    assert stream.replay.members("ferry") and len(stream.replay) == 1

    second = stream.batch(1)
    replayed = [s for s in second if s.get("replayed")]
    assert [s["sample_id"] for s in replayed] == [target["sample_id"]]  # once: the buffer holds one problem
    assert replayed[0]["bucket"] == "hard"  # its real bucket
    assert Counter(s["domain"] for s in second) == dict.fromkeys(DOMAINS, 2)
    m = stream.metrics()
    assert m["sampler/replay/ferry"] == 1 and m["sampler/replay/spanner"] == 0 and m["sampler/replay_buffer/ferry"] == 1
    assert stream.batch(1) == second  # asking again: the same batch, replay marks included

    stream.observe(_outcomes(second, lambda s: [0.0] * G))  # no variance now: it leaves
    assert len(stream.replay) == 0
    assert not any(s.get("replayed") for s in stream.batch(2))


def test_only_problems_of_the_replay_buckets_enter(data_root):
    stream = _stream(data_root, schedule="fixed", fixed_weights={"easy": 1, "medium": 0, "hard": 0},
                     replay_fraction=1.0)
    stream.observe(_outcomes(stream.batch(0), lambda s: [1.0, 0.0, 0.0, 0.0]))
    assert len(stream.replay) == 0
    easy = _stream(data_root, schedule="fixed", fixed_weights={"easy": 1, "medium": 0, "hard": 0},
                   replay_fraction=1.0, replay_buckets=["easy"])
    easy.observe(_outcomes(easy.batch(0), lambda s: [1.0, 0.0, 0.0, 0.0]))
    assert len(easy.replay) == 10


def test_unjudged_completions_are_ignored_and_refill_outcomes_count(data_root):
    stream = _stream(data_root, schedule="fixed", fixed_weights=HARD, replay_fraction=1.0)
    batch = stream.batch(0)
    stream.observe(_outcomes(batch, lambda s: [None, None, 1.0, None]))  # one judged reward: says nothing
    assert len(stream.replay) == 0
    extra = stream.refill(0, 0, ["grippers"])
    stream.observe(_outcomes(extra, lambda s: [None, 1.0, 0.0, None]))  # None left out, 1.0 != 0.0
    assert len(stream.replay) == len(stream.replay.members("grippers")) == 1
    replayed = [s["sample_id"] for s in stream.batch(1) if s.get("replayed")]
    assert replayed == [extra[0]["sample_id"]]


def test_capacity_pushes_the_oldest_out_and_signal_moves_a_problem_to_the_newest():
    buffer = ReplayBuffer(["ferry"], capacity=3)
    for i in range(5):
        buffer.update("ferry", i, True)
    assert buffer.members("ferry") == [2, 3, 4]
    buffer.update("ferry", 2, True)
    assert buffer.members("ferry") == [3, 4, 2]
    buffer.update("ferry", 4, False)
    assert buffer.members("ferry") == [3, 2]
    restored = ReplayBuffer(["ferry", "grippers"], capacity=3)
    restored.load_state_dict(json.loads(json.dumps(buffer.state_dict())))
    assert restored.members("ferry") == [3, 2] and restored.members("grippers") == []


def test_stream_buffer_honours_its_capacity(data_root):
    stream = _stream(data_root, schedule="fixed", fixed_weights=HARD, replay_fraction=0.5, replay_capacity=3)
    for t in range(10):
        stream.observe(_outcomes(stream.batch(t), lambda s: [1.0, 0.0, 0.0, 0.0]))
        assert all(len(stream.replay.members(d)) <= 3 for d in DOMAINS)
    assert all(len(stream.replay.members(d)) == 3 for d in DOMAINS)


def test_group_signals_reads_consecutive_runs():
    outs = [{"sample_id": sid, "reward": r} for sid, r in
            [("a:1", 1.0), ("a:1", 1.0), ("a:2", 0.0), ("a:2", 1.0), ("a:1", 0.0), ("a:1", None), ("a:3", 0.5)]]
    assert list(group_signals(outs)) == [("a:1", False), ("a:2", True)]  # a:1 again has one judged reward


def _run(root, steps, **kw):
    """Batches of a replaying stream fed outcomes that depend on the problem (signal on even lines)."""
    stream = _stream(root, replay_fraction=0.5, replay_buckets=["medium", "hard"], **kw)
    out = []
    for t in range(steps):
        batch = stream.batch(t)
        out.append(_flat(batch))
        stream.observe(_outcomes(batch, _signal_on_even_lines))
    return stream, out


def _signal_on_even_lines(sample):
    return [1.0, 0.0, 1.0, 1.0] if int(sample["sample_id"].split(":")[1]) % 2 == 0 else [0.0] * G


def test_replay_keeps_exact_domain_balance_and_avoids_repeats_inside_a_batch(data_root):
    stream, batches = _run(data_root, 200, batch_size=20, data_parallel_size=2)
    replays = 0
    for t, flat in enumerate(batches):
        for shard in (flat[:10], flat[10:]):
            assert Counter(sid.split(":")[0] for sid, _ in shard) == dict.fromkeys(DOMAINS, 2), t
        assert len({sid for sid, _ in flat}) == len(flat), t
        replays += sum(r for _, r in flat)
    assert 200 < replays < 2000  # about half the draws of domains with a non-empty buffer
    assert all(0 < len(stream.replay.members(d)) <= 32 for d in DOMAINS)


def test_replay_is_deterministic_for_a_seed(data_root):
    assert _run(data_root, 40)[1] == _run(data_root, 40)[1] != _run(data_root, 40, seed=4)[1]


def test_state_dict_round_trip_resumes_identical_batches(data_root):
    _, uninterrupted = _run(data_root, 60)
    first, _ = _run(data_root, 30)
    state = json.loads(json.dumps(first.state_dict()))
    resumed = _stream(data_root, replay_fraction=0.5, replay_buckets=["medium", "hard"])
    resumed.load_state_dict(state)
    assert _flat(resumed.batch(29)) == uninterrupted[29]  # the last batch again, replay marks included
    for t in range(30, 60):
        batch = resumed.batch(t)
        assert _flat(batch) == uninterrupted[t], t
        resumed.observe(_outcomes(batch, _signal_on_even_lines))


def test_an_older_state_without_replay_loads_with_empty_buffers(data_root):
    stream, _ = _run(data_root, 5)
    state = stream.state_dict()
    for key in ("replay", "last_replayed", "last_shares"):
        del state[key]
    fresh = _stream(data_root, replay_fraction=0.5)
    fresh.load_state_dict(state)
    assert len(fresh.replay) == 0 and not any(s.get("replayed") for s in fresh.batch(4))


def test_outcomes_naming_no_record_are_rejected(data_root):
    stream = _stream(data_root, replay_fraction=0.5)
    bad = {"domain": "ferry", "bucket": "hard", "reward": 1.0, "label": "success_plans"}
    with pytest.raises(ValueError, match="lacks 'sample_id'"):
        stream.observe([bad])
    with pytest.raises(ValueError, match="outcome ferry:99999: domain ferry has no record at line 99999"):
        stream.observe([{**bad, "sample_id": "ferry:99999"}] * 2)


@pytest.mark.parametrize(("kw", "message"), [
    ({"replay_buckets": ["hard", "extreme"]}, r"replay_buckets names unknown buckets \['extreme'\]"),
    ({"replay_fraction": 1.5}, "less than or equal to 1"),
    ({"replay_fraction": -0.1}, "greater than or equal to 0"),
    ({"replay_fraction": 0.3, "replay_buckets": []}, "replay_buckets is empty"),
    ({"replay_capacity": 0}, "greater than or equal to 1"),
])
def test_bad_replay_configs_are_rejected(kw, message):
    with pytest.raises(ValidationError, match=message):
        SamplerConfig(**kw)
