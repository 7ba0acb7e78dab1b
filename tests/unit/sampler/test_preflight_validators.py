"""Pre-flight validator choice (issue 20): per task, native where it parses, VAL for features only VAL simulates."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from reward_service.validators import task_key
from sampler.config import SamplerConfig
from sampler.pddl_check import PddlFileCheck, PddlFileError
from sampler.preflight import preflight

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SIXTH = FIXTURES / "sixth_domain"


@pytest.fixture
def root(tmp_path) -> Path:
    """A data root with roads (:action-costs), rovers (:durative-actions) and ferry (plain STRIPS + constraints)."""
    out = tmp_path / "data"
    for name in ("roads", "rovers"):
        shutil.copytree(SIXTH / name, out / "pddl" / name, ignore=shutil.ignore_patterns("records.jsonl"))
        shutil.copy(SIXTH / name / "records.jsonl", out / f"{name}.jsonl")
    shutil.copytree(FIXTURES / "pddl" / "ferry", out / "pddl" / "ferry")
    meta = {"problem_file": "pddl/ferry/p01.pddl", "domain_file": "pddl/ferry/domain.pddl", "reference_plan_length": 3}
    rec = {"prompt": "ferry p01", "meta": meta}
    (out / "ferry.jsonl").write_text(json.dumps(rec) + "\n")
    return out


def _cfg(root: Path, **kw) -> SamplerConfig:
    return SamplerConfig(data_root=str(root), domains=["ferry", "roads", "rovers"], difficulty="plan_length", **kw)


def test_auto_routes_durative_tasks_to_val_with_one_warning_per_domain(root, caplog):
    caplog.set_level(logging.INFO, "sampler.preflight")
    report = preflight(_cfg(root), "auto")
    assert report.validators == {"ferry": {"native": 1}, "roads": {"native": 3}, "rovers": {"val": 3}}
    assert report.task_validators[task_key("pddl/rovers/domain.pddl", "pddl/rovers/p02.pddl", root)] == "val"
    assert report.task_validators[task_key(root / "pddl/roads/domain.pddl", "pddl/roads/p01.pddl", root)] == "native"
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("pre-flight: domain ")]
    assert len(lines) == 3  # one line per domain
    rovers = [ln for ln in lines if "domain rovers" in ln]
    assert len(rovers) == 1 and "uses :durative-actions" in rovers[0] and "VAL will be used" in rovers[0]
    assert f"{root}/pddl/rovers/domain.pddl:3:" in rovers[0]
    assert any("domain roads: validator native for 3 task(s)" in ln for ln in lines)


def test_native_refuses_a_durative_domain_naming_file_line_and_requirement(root):
    for on_bad in ("error", "skip"):  # skipping would leave records no validator of the run can score
        with pytest.raises(PddlFileError) as err:
            preflight(_cfg(root, on_bad_record=on_bad), "native")
        assert str(err.value).startswith(f"{root}/pddl/rovers/domain.pddl:3: ")
        assert "domain 'rovers' uses :durative-actions, so it cannot be trained on with reward.validator: native" \
            in str(err.value)


def test_val_accepts_every_task_and_keeps_no_map(root):
    report = preflight(_cfg(root), "val")
    assert report.task_validators == {}
    assert report.validators == {"ferry": {"val": 1}, "roads": {"val": 3}, "rovers": {"val": 3}}


def test_a_problem_level_feature_routes_only_that_task(root):
    problem = root / "pddl/roads/p02.pddl"
    problem.write_text(problem.read_text().replace("(:init", "(:init (at 5 (road c b))", 1))  # a timed literal
    check = PddlFileCheck("all", "auto")
    domain = str(root / "pddl/roads/domain.pddl")
    for p in ("p01", "p02"):
        assert check.check(domain, str(root / f"pddl/roads/{p}.pddl"), "roads") is None
    choices = {Path(p).name: c for (_, p), c in check.choices.items()}
    assert choices["p01.pddl"].validator == "native"
    assert (choices["p02.pddl"].validator, choices["p02.pddl"].requirement) == ("val", ":timed-initial-literals")
    assert f"{problem}:" in choices["p02.pddl"].reason


def test_a_broken_file_still_stops_the_run_under_auto(root):
    domain = root / "pddl/roads/domain.pddl"
    domain.write_text(domain.read_text().replace("(:action honk", "(:action honk (", 1))
    with pytest.raises(PddlFileError, match=rf"^{domain}:\d+: "):
        preflight(_cfg(root), "auto")
