"""Every loss type takes a step through the driver (StepLoop): the learner gets what each one needs.

dr_grpo needs `learner.max_completion_length`; left null, the driver fills in rollout.max_new_tokens
(it once failed at learner start, because nothing did).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import ray

from learner.config.run import load_config
from learner.driver.bootstrap import ensure_model
from learner.driver.run_dir import create_run_dir
from learner.grpo.loss import LOSS_TYPES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    from sampler.datagen.builder import build_dataset

    data_root = tmp_path_factory.mktemp("data")
    build_dataset(data_root, per_domain=6, sizes="tiny", prompt_style="compact", test_fraction=0.0, seed=1)
    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml", _overrides(data_root, "grpo"))
    model_path = ensure_model(cfg, data_root, tmp_path_factory.mktemp("model"))
    ray.init(address="local", num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield data_root, model_path
    ray.shutdown()


def _overrides(data_root: Path, loss_type: str) -> list[str]:
    values = {
        "sampler.data_root": str(data_root), "max_steps": 1, "save_steps": 1, "mode": "sync",
        "rollout.num_generations": 2, "rollout.max_new_tokens": 12, "sft.enabled": "false",
        "eval.before_after": "false", "logging.progress_bar": "false", "learner.loss_type": loss_type,
        "learner.beta": 0.02,  # the reference pass too
        "learner.skip_zero_advantage": "false",
    }
    return [f"{k}={v}" for k, v in values.items()]


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_each_loss_type_takes_a_step_through_the_driver(setup, tmp_path: Path, loss_type: str) -> None:
    from learner.driver.loop import StepLoop  # imports the actors

    data_root, model_path = setup
    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml", _overrides(data_root, loss_type))
    assert cfg.learner.max_completion_length is None  # left to the driver
    run_dir = create_run_dir(tmp_path, "loss", tmp_path / "run")
    loop = StepLoop(cfg, run_dir, model_path, data_root)
    try:
        assert loop.learner.config.max_completion_length == cfg.rollout.max_new_tokens == 12
        loop.run()
    finally:
        loop.shutdown()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert [r["step"] for r in records] == [0]
    record = records[0]
    assert math.isfinite(record["learner/loss"]) and record["learner/tokens"] > 0, record
    assert record["policy_version"] == 1 and (run_dir / "checkpoints" / "step-0").is_dir()
