"""The training loop with two data-parallel learner ranks (gloo on CPU): merged metrics, checkpoint, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from learner.config.run import load_config
from learner.driver.pipeline import run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sampler.datagen.builder import build_dataset

    root = tmp_path_factory.mktemp("data")
    build_dataset(root, per_domain=12, sizes="tiny", prompt_style="compact", test_fraction=0.2, seed=1)
    return root


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_two_learner_ranks_train_save_and_resume(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "dp"
    overrides = {
        "output_dir": str(out), "sampler.data_root": str(data_root), "max_steps": 2, "save_steps": 1,
        "rollout.num_generations": 2, "rollout.max_new_tokens": 16, "sft.enabled": "false",
        "eval.before_after": "false", "logging.progress_bar": "false", "learner.data_parallel_size": 2,
        "cluster.num_cpus": 4, "cluster.learner_num_cpus": 1, "cluster.include_dashboard": "false",
    }
    args = [f"{k}={v}" for k, v in overrides.items()]
    assert run(load_config(ROOT / "configs" / "tiny_cpu.yaml", args)) == 0
    records = _records(out)
    assert [r["step"] for r in records] == [0, 1]
    for r in records:
        assert r["data_parallel/ranks"] == 2.0 and r["data_parallel/token_imbalance"] >= 1.0
        # every completion of the batch reached one of the two ranks
        assert r["learner/num_sequences"] == sum(r["labels"].values())
    assert (out / "checkpoints" / "step-1" / "adapter_model.safetensors").exists()

    # resume from step 0's checkpoint: both ranks load it and train step 1 again
    resumed = load_config(ROOT / "configs" / "tiny_cpu.yaml",
                          [*args, f"resume_from_checkpoint={out / 'checkpoints' / 'step-0'}"])
    assert run(resumed) == 0
    assert [r["step"] for r in _records(out)] == [0, 1]
