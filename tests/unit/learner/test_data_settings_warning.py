"""Generated data found in sampler.data_root is used as it is; settings it was generated without are warned about."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from learner.config.run import load_config
from learner.driver.bootstrap import ensure_data

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "tiny_cpu.yaml"


def _data(root, **arguments):
    root.mkdir()
    (root / "ferry.jsonl").write_text("")
    built = {"seed": 3407, "per_domain": 300, "sizes": "tiny", "prompt_style": "compact", "constraints": "mix",
             "test_fraction": 0.2, **arguments}
    (root / "metadata.json").write_text(json.dumps({"arguments": built}))
    return root


def _cfg(root, *overrides):
    return load_config(CONFIG, [f"sampler.data_root={root}", *overrides])


def test_another_seed_than_the_data_was_generated_with_is_warned_about_naming_both(tmp_path, caplog):
    root = _data(tmp_path / "d")
    with caplog.at_level(logging.WARNING, logger="learner.driver.bootstrap"):
        assert ensure_data(_cfg(root, "seed=1"), progress=False) == root
    [msg] = [r.getMessage() for r in caplog.records]
    assert "seed=3407 (this run: 1)" in msg and str(root) in msg and "per_domain" not in msg


def test_the_data_of_the_runs_own_settings_a_users_own_data_and_an_opt_out_are_not_warned_about(tmp_path, caplog):
    same, own = _data(tmp_path / "same"), tmp_path / "own"
    own.mkdir()
    (own / "ferry.jsonl").write_text("")
    other = _data(tmp_path / "other", per_domain=12, seed=1)
    with caplog.at_level(logging.WARNING, logger="learner.driver.bootstrap"):
        ensure_data(_cfg(same), progress=False)
        ensure_data(_cfg(own, "seed=5"), progress=False)
        ensure_data(_cfg(other, "data.build_if_missing=false"), progress=False)
    assert caplog.records == []


def test_a_data_root_without_data_that_may_not_be_built_exits_2_naming_the_folder(tmp_path, capsys):
    from learner.main import main

    rc = main(["--config", str(CONFIG), f"sampler.data_root={tmp_path / 'none'}", "data.build_if_missing=false",
               f"runs_root={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert rc == 2 and f"{tmp_path / 'none'}: no <domain>.jsonl files" in err and "Traceback" not in err
