"""A real run's config.yaml is exactly the config its step loop got (issue 16 item 4): resolved paths, the model
the actors loaded, the domains the pre-flight found."""

from __future__ import annotations

from pathlib import Path

import pytest

import learner.driver.loop
from learner.config.run import load_config
from learner.driver.pipeline import run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_config_yaml_reloads_to_the_config_the_loop_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sampler.datagen.builder import build_dataset

    data_root = tmp_path / "data"
    build_dataset(data_root, per_domain=6, sizes="tiny", prompt_style="compact", test_fraction=0.2, seed=1)
    seen: dict = {}
    init = learner.driver.loop.StepLoop.__init__

    def recording_init(self, cfg, run_dir, model_path="", data_root=None, **kwargs):  # records, then runs as is
        seen.update(cfg=cfg, model_path=model_path, data_root=data_root)
        init(self, cfg, run_dir, model_path, data_root, **kwargs)

    monkeypatch.setattr(learner.driver.loop.StepLoop, "__init__", recording_init)
    monkeypatch.chdir(tmp_path)  # a relative data_root, as a user writes it
    out = tmp_path / "run"
    overrides = [f"output_dir={out}", "sampler.data_root=data", "max_steps=1", "save_steps=1",
                 "rollout.num_generations=2", "rollout.max_new_tokens=8", "sft.enabled=false",
                 "eval.before_after=false", "logging.progress_bar=false", "reward.num_workers=1",
                 "cluster.num_cpus=4", "cluster.learner_num_cpus=1", "rollout.num_cpus_per_actor=1"]
    assert run(load_config(ROOT / "configs" / "tiny_cpu.yaml", overrides)) == 0

    written = load_config(out / "config.yaml")
    ran = seen["cfg"]
    assert written.model_dump() == ran.model_dump()  # task_validators (pre-flight's, not a setting) is excluded
    assert written.learner.base_model == seen["model_path"] == str(out / "tiny_model")
    assert written.sampler.data_root == str(seen["data_root"]) == str(data_root.resolve())
    assert written.sampler.domains == ["blocksworld", "delivery", "ferry", "grippers", "spanner"]
    text = (out / "config.yaml").read_text()
    assert f"#   learner.base_model: 'tiny' -> '{out / 'tiny_model'}'" in text
