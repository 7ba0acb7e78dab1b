"""Data-parallel pieces without a cluster: token-balanced shards, merged rank metrics, rank-count validation."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from learner.config.learner import data_parallel_ranks
from learner.config.run import ConfigError, config_from_dict
from learner.grpo.data_parallel import merge_rank_metrics, sample_cost, shard_samples
from learner.grpo.train_step import TrainSample, samples_from_completions


def _sample(group: int | None, prompt: int, completion: int) -> TrainSample:
    return TrainSample(tuple(range(2, 2 + prompt)), tuple(range(100, 100 + completion)), 0.0, group=group)


def _random_batch(rng: random.Random) -> list[TrainSample]:
    groups, g = rng.randint(1, 12), rng.randint(1, 6)
    out = []
    for k in range(groups):
        prompt = rng.randint(1, 40)
        out += [_sample(k, prompt, rng.randint(0, 60)) for _ in range(g)]
    rng.shuffle(out)  # a group's samples need not be adjacent
    return out


@pytest.mark.parametrize("seed", range(25))
def test_shards_keep_groups_whole_and_hold_every_sample_once(seed: int) -> None:
    rng = random.Random(seed)
    samples = _random_batch(rng)
    n = rng.randint(1, 5)
    shards = shard_samples(samples, n)
    assert len(shards) == n
    flat = [id(s) for shard in shards for s in shard]
    assert sorted(flat) == sorted(id(s) for s in samples)  # every sample exactly once
    owner, position = {}, {id(s): i for i, s in enumerate(samples)}
    for k, shard in enumerate(shards):
        for s in shard:
            assert owner.setdefault(s.group, k) == k, f"group {s.group} split over shards"
        positions = [position[id(s)] for s in shard]
        assert positions == sorted(positions)  # input order kept inside a shard
    # greedy list scheduling: no shard exceeds the even share by more than the largest group
    group_cost = {}
    for s in samples:
        group_cost[s.group] = group_cost.get(s.group, 0) + sample_cost(s)
    loads = [sum(sample_cost(s) for s in shard) for shard in shards]
    assert max(loads) <= sum(loads) / n + max(group_cost.values())


def test_shards_balance_tokens_not_sample_counts() -> None:
    # one long group and three short ones: an even split by count would put 320 tokens against 40
    samples = [_sample(0, 10, 140), _sample(0, 10, 140)] + [_sample(k, 5, 5) for k in (1, 1, 2, 2, 3, 3)]
    shards = shard_samples(samples, 2)
    assert [len(s) for s in shards] == [2, 6]
    assert [sum(sample_cost(s) for s in shard) for shard in shards] == [300, 60]
    # equal groups split evenly by count too
    even = [_sample(k, 4, 4) for k in range(4) for _ in range(2)]
    assert [len(s) for s in shard_samples(even, 2)] == [4, 4]


def test_ungrouped_samples_more_shards_than_groups_and_prompt_truncation() -> None:
    loose = [_sample(None, 3, 3) for _ in range(4)]
    assert [len(s) for s in shard_samples(loose, 4)] == [1, 1, 1, 1]  # None: each sample is its own group
    one_group = [_sample(7, 3, 3) for _ in range(3)]
    assert [len(s) for s in shard_samples(one_group, 3)] == [3, 0, 0]
    assert sample_cost(_sample(0, 50, 5)) == 55 and sample_cost(_sample(0, 50, 5), max_prompt_length=8) == 13
    with pytest.raises(ValueError, match="num_shards must be at least 1, got 0"):
        shard_samples(loose, 0)


def test_samples_from_completions_numbers_groups_and_keeps_them_after_filtering() -> None:
    completions = [SimpleNamespace(prompt_token_ids=[2], token_ids=[5, 1], logprobs=[-1.0, -1.0],
                                   finish_reason="stop", policy_version=0) for _ in range(6)]
    kept = samples_from_completions(completions, [0.0] * 6, [True, True, False, False, True, True], group_size=2)
    assert [s.group for s in kept] == [0, 0, 2, 2]
    assert all(s.group is None for s in samples_from_completions(completions, [0.0] * 6))
    with pytest.raises(ValueError, match="group_size must be at least 1"):
        samples_from_completions(completions, [0.0] * 6, group_size=0)


def test_merged_metrics_sum_counts_and_weight_means() -> None:
    rank0 = {"loss": 0.5, "tokens": 30.0, "num_sequences": 2.0, "num_micro_batches": 1.0, "kl": 0.1,
             "clip_ratio/low_mean": 0.0, "is_weight/min": 0.9, "is_weight/max": 1.1, "advantage_abs_mean": 1.0,
             "grad_norm": 2.0, "lr": 1e-3, "version": 4.0, "learn_time_s": 2.0, "policy_version_lag_max": 0.0}
    rank1 = {"loss": -0.2, "tokens": 10.0, "num_sequences": 6.0, "num_micro_batches": 2.0, "kl": 0.5,
             "clip_ratio/low_mean": 1.0, "advantage_abs_mean": 0.0, "grad_norm": 2.0, "lr": 1e-3, "version": 4.0,
             "learn_time_s": 4.0, "policy_version_lag_max": 1.0}
    m = merge_rank_metrics([rank0, rank1])
    assert m["loss"] == pytest.approx(0.3) and m["tokens"] == 40.0 and m["num_sequences"] == 8.0
    assert m["num_micro_batches"] == 3.0
    assert m["kl"] == pytest.approx((0.1 * 30 + 0.5 * 10) / 40)  # token-weighted
    assert m["clip_ratio/low_mean"] == pytest.approx(0.25)
    assert m["advantage_abs_mean"] == pytest.approx(2 / 8)  # sequence-weighted
    assert (m["is_weight/min"], m["is_weight/max"]) == (0.9, 1.1)  # only rank 0 had importance weights
    assert (m["grad_norm"], m["lr"], m["version"]) == (2.0, 1e-3, 4.0)
    assert m["learn_time_s"] == 4.0 and m["policy_version_lag_max"] == 1.0
    assert m["learn_tokens_per_s"] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="at least one rank"):
        merge_rank_metrics([])


@pytest.mark.parametrize(("size", "gpus", "ranks"), [
    (None, 0.0, 1), (3, 0.0, 3), (None, 0.5, 1), (1, 1.0, 1), (None, 2.0, 2), (4, 4.0, 4),
])
def test_data_parallel_ranks_follow_size_and_gpus(size: int | None, gpus: float, ranks: int) -> None:
    assert data_parallel_ranks(size, gpus) == ranks


@pytest.mark.parametrize(("size", "gpus", "message"), [
    (2, 1.0, r"learner.data_parallel_size \(2\) needs one GPU per rank: set cluster.learner_num_gpus to 2 "
             r"\(it is 1\), or to 0 for gloo ranks on CPU"),
    (3, 2.0, r"learner.data_parallel_size \(3\) must equal cluster.learner_num_gpus \(2\)"),
    (None, 2.5, r"cluster.learner_num_gpus: learner GPUs above 1 must be a whole number \(one per data-parallel "
                r"rank\), got 2.5"),
])
def test_inconsistent_rank_settings_are_rejected(size: int | None, gpus: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        data_parallel_ranks(size, gpus)
    learner = {} if size is None else {"data_parallel_size": size}
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"learner": learner, "cluster": {"learner_num_gpus": gpus}})


def test_run_config_accepts_cpu_ranks_and_rejects_zero() -> None:
    assert config_from_dict({"learner": {"data_parallel_size": 2}}).learner.data_parallel_size == 2
    with pytest.raises(ConfigError, match="learner.data_parallel_size"):
        config_from_dict({"learner": {"data_parallel_size": 0}})
