"""Configs that load but cannot learn are refused at load, exit 2, naming the key (issue 19 item 6)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from learner.config.run import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[3]
TINY = ROOT / "configs" / "tiny_cpu.yaml"


@pytest.mark.parametrize("override, key", [
    ("learner.learning_rate=inf", "learner.learning_rate"),
    ("learner.learning_rate=.inf", "learner.learning_rate"),
    ("learner.learning_rate=nan", "learner.learning_rate"),
    ("learner.max_grad_norm=.inf", "learner.max_grad_norm"),
    ("sft.learning_rate=inf", "sft.learning_rate"),
    ("sft.learning_rate=.nan", "sft.learning_rate"),
    ("rollout.num_generations=1", "rollout.num_generations"),
])
def test_a_config_that_cannot_learn_is_refused_naming_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key}.*(finite number|at least 2 completions)"):
        load_config(TINY, [override])


def test_finite_learning_rates_and_two_generations_still_load() -> None:
    cfg = load_config(TINY, ["learner.learning_rate=3e-4", "sft.learning_rate=1e-3", "rollout.num_generations=2"])
    assert (cfg.learner.learning_rate, cfg.sft.learning_rate, cfg.rollout.num_generations) == (3e-4, 1e-3, 2)


def test_print_config_exits_2_on_an_infinite_learning_rate() -> None:
    run = subprocess.run([sys.executable, "-m", "learner.main", "--print-config", "learner.learning_rate=inf"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "key 'learner.learning_rate': value 'inf' is invalid: Input should be a finite number" in run.stderr


@pytest.mark.parametrize("value, message", [
    ("{easy: 0.7, medium: 0.9}", r"exactly the keys easy, medium, hard; missing: \['hard'\]"),
    ("{easy: 0.7, medium: 0.9, hard: 1.1, extreme: 2}", r"unknown: \['extreme'\]"),
    ("{easy: 0.7, medium: 0, hard: 1.1}", r"bucket_temperatures.medium must be a finite number > 0, got 0"),
    ("{easy: -0.5, medium: 0.9, hard: 1.1}", r"bucket_temperatures.easy must be a finite number > 0"),
    ("{easy: .inf, medium: 0.9, hard: 1.1}", r"bucket_temperatures.easy must be a finite number > 0"),
])
def test_bucket_temperatures_need_three_positive_buckets(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"key 'rollout.bucket_temperatures'.*{message}"):
        load_config(TINY, [f"rollout.bucket_temperatures={value}"])


def test_bucket_temperatures_load_off_by_default_and_refuse_a_learner_temperature() -> None:
    assert load_config(TINY).rollout.bucket_temperatures is None
    cfg = load_config(TINY, ["rollout.bucket_temperatures={hard: 1.2, easy: 0.6, medium: 0.9}"])
    assert cfg.rollout.bucket_temperatures == {"easy": 0.6, "medium": 0.9, "hard": 1.2}
    with pytest.raises(ConfigError, match="learner.temperature=0.8 matches none of them"):
        load_config(TINY, ["rollout.bucket_temperatures={easy: 0.6, medium: 0.9, hard: 1.2}",
                           "learner.temperature=0.8"])
