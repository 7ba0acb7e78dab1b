"""scripts/ablation.py: every arm's overrides load on the default config; the pooled table of its runs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from learner.config.run import load_config

ROOT = Path(__file__).resolve().parents[3]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


abl = _load("ablation")


@pytest.mark.parametrize("arm", abl.ARMS, ids=lambda a: a.name)
def test_every_arm_is_a_valid_config_on_the_default_that_differs_from_it(arm, tmp_path):
    cmd = abl.arm_command(arm, tmp_path / "sft_model", tmp_path / "data", 7, tmp_path / "run", 20, [])
    overrides = [c for c in cmd[3:] if "=" in c]
    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml", overrides)
    assert cfg.seed == 7 and cfg.max_steps == 20 and not cfg.sft.enabled
    assert cfg.learner.base_model == str(tmp_path / "sft_model")
    assert cfg.sampler.data_root == str(tmp_path / "data") and not cfg.data.build_if_missing
    base = load_config(ROOT / "configs" / "tiny_cpu.yaml", overrides[: len(overrides) - len(arm.overrides)])
    assert (cfg.model_dump() == base.model_dump()) == (arm.overrides == ())  # an arm changes something


def _result(rates: dict[str, tuple[int, int]]) -> dict:
    domains = {d: {"n": n, "success_rate": k / n} for d, (k, n) in rates.items()}
    k, n = sum(k for k, _ in rates.values()), sum(n for _, n in rates.values())
    return {"domains": domains, "overall": {"n": n, "success_rate": k / n}}


def test_pooled_counts_trials_over_seeds_and_gives_their_wilson_interval():
    runs = [{"after": _result({"a": (6, 10), "b": (0, 10)})}, {"after": _result({"a": (2, 10), "b": (10, 10)})}]
    table = abl.pooled(runs)
    assert table["a"]["rate"] == pytest.approx(0.4) and table["a"]["n"] == 20
    assert table["a"]["per_seed"] == [0.6, 0.2]
    assert table["overall"]["rate"] == pytest.approx(18 / 40)
    lo, hi = table["a"]["ci95"]
    assert lo < 0.4 < hi and hi - lo < 0.45  # 20 trials: narrower than one seed's 10
    text = abl.markdown(table, {"step": table}, {"step": "x"}, [1, 2])
    assert "| step: x | 0.40 [" in text and text.endswith("| 0.30, 0.60 |")  # overall of each seed
