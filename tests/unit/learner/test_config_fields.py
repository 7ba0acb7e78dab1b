"""Config fields that do what their doc says (issue 16 item 4): removed fields fail loudly naming what replaced
them, one field per quantity, and the run directory's config.yaml loads back to the config the loop got."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from learner.config.run import ConfigError, RunConfig, config_from_dict, load_config
from learner.driver.pipeline import _write_run_config, resolved_config
from reward_service.config import RewardConfig
from sampler.config import SamplerConfig


def _leaf_fields(model: type[BaseModel], prefix: str = ""):
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _leaf_fields(ann, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field


def test_every_field_has_a_doc() -> None:
    undocumented = [key for key, field in _leaf_fields(RunConfig) if not (field.description or "").strip()]
    assert undocumented == []


def test_removed_reward_debug_log_fails_at_load_naming_what_replaced_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"<defaults> \+ overrides: key 'reward.debug_log' was removed: "
                                          r"reward_debug.log is always written .*reward.debug_plan_chars"):
        load_config(None, ["reward.debug_log=true"])
    path = tmp_path / "old.yaml"
    path.write_text("reward:\n  debug_log: false\n")
    with pytest.raises(ConfigError, match=f"{path}: key 'reward.debug_log' was removed"):
        load_config(path)
    with pytest.raises(ValidationError, match="debug_log"):  # the library config refuses it too
        RewardConfig(debug_log=True)


def test_one_data_parallel_size_per_run() -> None:
    with pytest.raises(ConfigError, match=r"sampler.data_parallel_size \(2\) shards the TRL dataset view "
                                          r"\(sampler.torch_dataset\) only; a run's data-parallel size is "
                                          r"learner.data_parallel_size"):
        config_from_dict({"sampler": {"batch_size": 20, "data_parallel_size": 2}})
    assert config_from_dict({"learner": {"data_parallel_size": 2}}).learner.data_parallel_size == 2
    assert SamplerConfig(data_parallel_size=2).data_parallel_size == 2  # TRL's dataset view keeps its shards


def test_save_total_limit_is_refused_once_by_its_field() -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict({"save_total_limit": 0})
    assert str(err.value) == ("<config>: key 'save_total_limit': value 0 is invalid: "
                              "Input should be greater than or equal to 1")


def test_config_yaml_is_the_resolved_config_and_names_what_was_resolved(tmp_path: Path) -> None:
    asked = config_from_dict({"sampler": {"data_root": "data"}, "learner": {"base_model": "tiny"}})
    data_root = (tmp_path / "data").resolve()
    ran = resolved_config(asked, data_root, str(tmp_path / "run" / "tiny_model"))
    (tmp_path / "run").mkdir()
    _write_run_config(asked, ran, tmp_path / "run")
    text = (tmp_path / "run" / "config.yaml").read_text()
    assert load_config(tmp_path / "run" / "config.yaml") == ran
    assert ran.learner.base_model == str(tmp_path / "run" / "tiny_model") and ran.sampler.data_root == str(data_root)
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert header == [
        "# resolved by the driver before the first step (asked -> ran):",
        f"#   sampler.data_root: 'data' -> {str(data_root)!r}",
        f"#   learner.base_model: 'tiny' -> {str(tmp_path / 'run' / 'tiny_model')!r}",
    ]
    assert yaml.safe_load(text)["learner"]["base_model"] == ran.learner.base_model
    # a resumed run keeps the first config.yaml and writes its own beside it
    again = ran.model_copy(update={"save_steps": 7})
    _write_run_config(again, again, tmp_path / "run")
    assert (tmp_path / "run" / "config.yaml").read_text() == text
    resumed = (tmp_path / "run" / "config.resumed.yaml").read_text()
    assert not resumed.startswith("#") and load_config(tmp_path / "run" / "config.resumed.yaml").save_steps == 7
