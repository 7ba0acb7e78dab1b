"""The config tree: YAML loading, dotted overrides, error messages, and the resolved round trip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from learner.config.run import ConfigError, RunConfig, dump_config, load_config, write_config

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def test_tiny_cpu_config_loads() -> None:
    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml")
    assert cfg.learner.base_model == "tiny"
    assert cfg.rollout.engine == "hf"
    assert cfg.sampler.batch_size % 5 == 0  # five domains, balanced


def test_tiny_cpu_vllm_config_is_the_tiny_default_with_the_vllm_engine() -> None:
    vllm = load_config(ROOT / "configs" / "tiny_cpu_vllm.yaml").model_dump()
    hf = load_config(ROOT / "configs" / "tiny_cpu.yaml").model_dump()
    assert (vllm["rollout"].pop("engine"), hf["rollout"].pop("engine")) == ("vllm", "hf")
    assert (vllm.pop("run_name"), hf.pop("run_name")) == ("tiny-cpu-vllm", "tiny-cpu")
    assert vllm == hf


def test_seed_defaults_have_a_home() -> None:
    cfg = RunConfig()
    assert cfg.sampler.batch_size == 8
    assert cfg.learner.learning_rate == 1e-5
    assert cfg.learner.gradient_accumulation_steps == 1
    assert cfg.learner.max_grad_norm == 1.0
    assert cfg.rollout.num_generations == 4
    assert cfg.learner.beta == 0.02
    assert cfg.learner.max_prompt_length == 1576
    assert cfg.rollout.max_new_tokens == 512
    assert (cfg.rollout.temperature, cfg.rollout.top_p, cfg.rollout.top_k) == (0.8, 0.9, 50)
    assert (cfg.save_steps, cfg.save_total_limit, cfg.logging.logging_steps) == (50, 4, 10)
    assert cfg.logging.wandb_project == "pddl-grpo-v2"
    assert (cfg.max_steps, cfg.seed, cfg.runs_root) == (1000, 3407, "./runs")
    assert cfg.learner.load_in_4bit is True


def test_overrides_nested_lists_booleans_and_floats() -> None:
    cfg = load_config(
        ROOT / "configs" / "tiny_cpu.yaml",
        ["learner.learning_rate=5e-6", "sampler.domains=[ferry,grippers]", "logging.wandb=true", "max_steps=7"],
    )
    assert cfg.learner.learning_rate == 5e-6
    assert cfg.sampler.domains == ["ferry", "grippers"]
    assert cfg.logging.wandb is True
    assert cfg.max_steps == 7


def test_unknown_key_names_key_and_closest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["learner.learnig_rate=1e-4"])
    assert "learner.learnig_rate" in str(info.value)
    assert "learner.learning_rate" in str(info.value)
    bad = tmp_path / "bad.yaml"
    bad.write_text("sampler:\n  batchsize: 8\n")
    with pytest.raises(ConfigError, match=r"unknown key 'sampler.batchsize' \(did you mean 'sampler.batch_size'\?\)"):
        load_config(bad)


def test_wrong_type_names_key_value_and_type() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["sampler.batch_size=eight"])
    text = str(info.value)
    assert "sampler.batch_size" in text and "'eight'" in text and "integer" in text


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("sampler:\n  batch_size: 8\n learner: [\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+"):
        load_config(bad)


def test_override_without_equals_is_rejected() -> None:
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["learner.learning_rate"])


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml", ["sampler.domains=[ferry]", "learner.beta=0.1"])
    path = write_config(cfg, tmp_path)
    assert load_config(path) == cfg
    assert dump_config(load_config(path)) == dump_config(cfg)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_passes_print_config(path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "learner.main", "--config", str(path), "--print-config"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "learner:" in proc.stdout


def test_print_config_exits_2_on_misspelled_key() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "learner.main", "--config", str(ROOT / "configs" / "qwen2.5-7b-lora.yaml"),
         "learner.lora_rnk=8", "--print-config"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 2
    assert "learner.lora_rnk" in proc.stderr


def test_refill_needs_the_filter_and_is_capped() -> None:
    with pytest.raises(ConfigError, match="max_refill_rounds=2 refills filtered groups, so it needs "
                                          "filter_zero_std_groups=true"):
        load_config(None, ["max_refill_rounds=2"])
    with pytest.raises(ConfigError, match="max_refill_rounds"):
        load_config(None, ["filter_zero_std_groups=true", "max_refill_rounds=9"])
    cfg = load_config(None, ["filter_zero_std_groups=true", "max_refill_rounds=2"])
    assert cfg.max_refill_rounds == 2


def test_max_staleness_is_async_only_and_bounded() -> None:
    assert load_config(ROOT / "configs" / "tiny_cpu.yaml", ["mode=async", "max_staleness=3"]).max_staleness == 3
    with pytest.raises(ValueError, match="max_staleness=2 applies to mode: async only"):
        load_config(ROOT / "configs" / "tiny_cpu.yaml", ["mode=sync", "max_staleness=2"])
    for bad in ("0", "9"):
        with pytest.raises(ValueError, match="max_staleness"):
            load_config(ROOT / "configs" / "tiny_cpu.yaml", ["mode=async", f"max_staleness={bad}"])
