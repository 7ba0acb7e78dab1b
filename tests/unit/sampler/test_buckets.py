"""Buckets at the 40th/80th percentiles: ties never split, empty buckets fall back with one warning."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from sampler.buckets import assign_buckets


def _bucket_of(table, n):
    return {int(i): b for b, idx in table.members.items() for i in idx} if n else {}


def test_distinct_scores_split_40_40_20():
    table = assign_buckets("ferry", np.arange(100, dtype=float))
    assert table.counts() == {"easy": 40, "medium": 40, "hard": 20}
    assert table.fallback == ()


@pytest.mark.parametrize("seed", range(5))
def test_equal_scores_never_split(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, size=200).astype(float)  # heavy ties
    table = assign_buckets("ferry", scores)
    bucket = _bucket_of(table, len(scores))
    assert len(bucket) == len(scores)
    for value in np.unique(scores):
        assert len({bucket[i] for i in np.flatnonzero(scores == value)}) == 1
    order = ["easy", "medium", "hard"]
    ranks = [order.index(bucket[i]) for i in np.argsort(scores, kind="stable")]
    assert ranks == sorted(ranks)  # buckets are monotone in the score


def test_empty_bucket_falls_back_with_one_warning_naming_the_domain(caplog):
    scores = np.array([13.0] * 35 + [20.0] * 5)  # p40 = p80 = 13: medium is empty
    with caplog.at_level(logging.WARNING):
        table = assign_buckets("grippers", scores)
    assert table.counts() == {"easy": 35, "medium": 0, "hard": 5}
    assert table.fallback == ("medium",)
    assert sorted(table.pool("medium").tolist()) == list(range(40))  # the whole domain
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Domain grippers" in warnings[0].getMessage()


def test_all_equal_scores_warn_once_for_two_empty_buckets(caplog):
    with caplog.at_level(logging.WARNING):
        table = assign_buckets("delivery", np.full(12, 7.0))
    assert table.fallback == ("medium", "hard")
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_domain_without_samples_is_an_error():
    with pytest.raises(ValueError, match="^Domain spanner has no samples in any bucket$"):
        assign_buckets("spanner", np.array([]))
