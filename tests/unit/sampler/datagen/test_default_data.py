"""The embedded default's data (configs/tiny_cpu.yaml): three filled buckets per domain, tiny limits, same bytes."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest

from learner.config.run import load_config
from learner.driver.bootstrap import _vocabulary_texts
from learner.driver.prompt_lengths import measure
from learner.policy.tiny import build_tiny_tokenizer
from sampler.config import BUCKETS
from sampler.datagen.builder import build_dataset
from sampler.datagen.domains import DOMAIN_NAMES
from sampler.datagen.generate import UnsolvableSizesError, make_problem
from sampler.datagen.sizes import TIERS, Tier, tier_counts
from sampler.stream import BalancedBatchStream

pytestmark = pytest.mark.slow  # two builds of the default data, ~10 s each on 2 cores

DEFAULT_CONFIG = Path(__file__).resolve().parents[4] / "configs" / "tiny_cpu.yaml"


def _build(cfg, out: Path) -> float:
    """The default run's data exactly as learner.driver.bootstrap.ensure_data builds it; returns the wall time (s)."""
    t0 = time.perf_counter()
    build_dataset(out, domains=cfg.sampler.domains, per_domain=cfg.data.per_domain, sizes=cfg.data.sizes,
                  prompt_style=cfg.data.prompt_style, constraints=cfg.data.constraints,
                  test_fraction=cfg.data.test_fraction, seed=cfg.seed, workers=cfg.data.workers)
    return time.perf_counter() - t0


@pytest.fixture(scope="module")
def default_data(tmp_path_factory):
    cfg = load_config(str(DEFAULT_CONFIG), [])
    out = tmp_path_factory.mktemp("default_data")
    return cfg, out, _build(cfg, out)


def test_default_config_uses_the_tiered_tiny_preset_and_seed_doc_scores(default_data):
    cfg, _, _ = default_data
    assert cfg.data.sizes == "tiny" and cfg.sampler.difficulty == "seed_doc"


def test_default_data_fills_easy_medium_and_hard_in_every_domain_without_fallback(default_data, caplog):
    cfg, root, _ = default_data
    with caplog.at_level(logging.WARNING, logger="sampler.buckets"):
        stream = BalancedBatchStream.from_config(cfg.sampler.model_copy(update={"data_root": str(root)}))
    assert not [r for r in caplog.records if "tied difficulty" in r.getMessage()]
    assert sorted(stream.tables) == sorted(DOMAIN_NAMES)
    for domain, table in stream.tables.items():
        scores = stream.index.domains[domain].scores
        counts = table.counts()
        assert table.fallback == () and all(counts[b] > 0 for b in BUCKETS), (domain, counts, table.thresholds)
        assert len(np.unique(scores)) >= 3, domain
        assert scores[table.members["hard"]].min() > scores[table.members["easy"]].max()
        assert counts["hard"] >= 0.1 * len(scores), (domain, counts)  # a hard bucket worth a curriculum phase


def test_default_data_fits_the_tiny_models_prompt_and_completion_limits(default_data):
    cfg, root, _ = default_data
    tok = build_tiny_tokenizer(_vocabulary_texts(root))
    assert all(s.over_limit == 0 for s in measure(tok, root, None, limit=cfg.learner.max_prompt_length))
    stream = BalancedBatchStream.from_config(cfg.sampler.model_copy(update={"data_root": str(root)}))
    for domain, table in stream.tables.items():
        records = [json.loads(line) for line in (root / f"{domain}.jsonl").read_text().splitlines()]
        # the gold plan plus <eos> is what SFT teaches and what the rollout must fit in max_new_tokens
        completion = [len(tok(r["response"], add_special_tokens=False)["input_ids"]) + 1 for r in records]
        assert max(completion) <= cfg.rollout.max_new_tokens, domain
        plan_len = np.array([r["meta"]["reference_plan_length"] for r in records])
        assert plan_len[table.members["hard"]].mean() > plan_len[table.members["easy"]].mean(), domain


def test_default_data_is_byte_identical_on_rebuild_and_under_a_minute(default_data, tmp_path, data_tree):
    cfg, root, first = default_data
    second = _build(cfg, tmp_path)
    assert data_tree(tmp_path) == data_tree(root)
    assert max(first, second) < 60.0, (first, second)


def test_tier_counts_split_by_share_and_sum_to_n():
    tiers = TIERS["tiny"]["ferry"]
    assert tier_counts(tiers, 300) == [135, 120, 45]
    assert tier_counts(tiers, 20) == [9, 8, 3]
    assert tier_counts(tiers, 3) == [1, 1, 1]
    assert all(sum(tier_counts(tiers, n)) == n for n in range(1, 50))
    assert tier_counts((Tier(1.0, {"l": (2, 2), "c": (1, 1)}),), 7) == [7]


def test_plan_cap_resamples_longer_plans_and_names_the_cap_when_impossible():
    capped = [make_problem("blocksworld", {"n": 5}, seed, max_plan_length=10) for seed in range(12)]
    free = [make_problem("blocksworld", {"n": 5}, seed) for seed in range(12)]
    assert all(len(p.plan) <= 10 for p in capped)
    assert any(len(p.plan) > 10 for p in free)  # the cap changed something on these seeds
    with pytest.raises(UnsolvableSizesError, match="at most 1 actions"):
        make_problem("ferry", {"l": 2, "c": 2}, 0, max_plan_length=1)
    with pytest.raises(ValueError, match="max_plan_length must be >= 1"):
        make_problem("ferry", {"l": 2, "c": 1}, 0, max_plan_length=0)
