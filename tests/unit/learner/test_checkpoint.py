"""Checkpoints: layout, exact restore (adapter, optimizer, scheduler, RNG, extra), pruning, atomicity, resume."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from learner.config.learner import LearnerConfig
from learner.grpo.train_step import GRPOTrainerCore, TrainSample
from learner.policy.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from learner.policy.model import get_adapter_state, load_policy

SAMPLES = [TrainSample((2, 3, 4), (5, 6, 7, 1), 1.0), TrainSample((2, 3), (8, 9, 1), -1.0)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _core(tiny_dir: Path, seed: int = 3407) -> GRPOTrainerCore:
    cfg = LearnerConfig(base_model=str(tiny_dir), lora_rank=4, use_gradient_checkpointing=False, learning_rate=1e-2,
                        lr_scheduler="cosine", warmup_steps=1, seed=seed)
    model, tok = load_policy(cfg)
    return GRPOTrainerCore(model, tok, cfg, num_training_steps=10)


def _save(core: GRPOTrainerCore, run_dir: Path, step: int, **kw) -> Path:
    return save_checkpoint(run_dir, step, core.model, core.optimizer, core.scheduler, version=core.version, **kw)


def test_layout_and_exact_restore(tiny_dir: Path, tmp_path: Path) -> None:
    core = _core(tiny_dir)
    core.step(SAMPLES)
    core.step(SAMPLES)
    sampler_state = {"rng": random.Random(5).getstate(), "cursor": {"ferry": 3}}
    path = _save(core, tmp_path, 2, extra={"sampler": sampler_state})
    assert path == tmp_path / "checkpoints" / "step-2"
    names = {p.name for p in path.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "optimizer.pt", "scheduler.pt", "rng.pt",
            "extra.pt", "state.json"} <= names
    assert json.loads((path / "state.json").read_text())["step"] == 2
    expected_draws = (random.random(), np.random.rand(), torch.rand(1).item())

    fresh = _core(tiny_dir, seed=11)
    loaded = load_checkpoint(path, fresh.model, fresh.optimizer, fresh.scheduler)
    assert (loaded.step, loaded.version) == (2, 2)
    assert loaded.extra["sampler"] == sampler_state  # tuples stay tuples: random.setstate accepts it
    random.Random().setstate(loaded.extra["sampler"]["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected_draws
    for key, value in get_adapter_state(core.model).items():
        assert torch.equal(get_adapter_state(fresh.model)[key], value)
    assert fresh.scheduler.state_dict()["last_epoch"] == core.scheduler.state_dict()["last_epoch"]
    assert fresh.optimizer.param_groups[0]["lr"] == core.optimizer.param_groups[0]["lr"]


def test_resumed_training_continues_identically(tiny_dir: Path, tmp_path: Path) -> None:
    core = _core(tiny_dir)
    core.step(SAMPLES)
    path = _save(core, tmp_path, 1)
    core.step(SAMPLES)
    continued = get_adapter_state(core.model)

    resumed = _core(tiny_dir, seed=99)
    load_checkpoint(path, resumed.model, resumed.optimizer, resumed.scheduler)
    resumed.step(SAMPLES)
    for key, value in get_adapter_state(resumed.model).items():
        torch.testing.assert_close(value, continued[key], atol=1e-7, rtol=0)


def test_save_total_limit_keeps_newest(tiny_dir: Path, tmp_path: Path) -> None:
    core = _core(tiny_dir)
    for step in (1, 2, 3, 4):
        _save(core, tmp_path, step, save_total_limit=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [3, 4]
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step-4"
    _save(core, tmp_path, 4, save_total_limit=2)  # the same step again replaces it
    assert [s for s, _ in list_checkpoints(tmp_path)] == [3, 4]


def test_incomplete_directories_are_never_picked(tiny_dir: Path, tmp_path: Path) -> None:
    core = _core(tiny_dir)
    _save(core, tmp_path, 1)
    (tmp_path / "checkpoints" / "step-9").mkdir()  # a crash before state.json: not complete
    (tmp_path / "checkpoints" / ".tmp-step-10-123").mkdir()
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step-1"


def test_auto_without_checkpoint_and_bad_paths(tiny_dir: Path, tmp_path: Path) -> None:
    core = _core(tiny_dir)
    assert load_checkpoint("auto", core.model, run_dir=tmp_path) is None
    _save(core, tmp_path, 3)
    assert load_checkpoint("auto", core.model, run_dir=tmp_path).step == 3
    with pytest.raises(FileNotFoundError, match="not a checkpoint"):
        load_checkpoint(tmp_path, core.model)
    with pytest.raises(ValueError, match="needs run_dir"):
        load_checkpoint("auto", core.model)
