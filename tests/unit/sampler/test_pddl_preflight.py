"""The PDDL pre-flight: every referenced file parsed once at load; a bad one stops with file, line and its records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sampler.config import SamplerConfig
from sampler.pddl_check import PddlFileCheck, PddlFileError
from sampler.preflight import preflight
from sampler.records import RecordError, load_records

THEIRS = Path(__file__).resolve().parents[2] / "fixtures" / "safety_gen"


@pytest.fixture
def repo(tmp_path) -> Path:
    shutil.copytree(THEIRS, tmp_path / "repo")
    return tmp_path / "repo"


def _cfg(repo: Path, **kw) -> SamplerConfig:
    return SamplerConfig(data_root=str(repo / "data/grpo"), pddl_root=str(repo), batch_size=3, **kw)


def _break_domain(repo: Path) -> Path:
    path = repo / "pddl3/delivery/domain3.pddl"
    path.write_text(path.read_text().replace("(:action drop", "(:action drop (", 1))
    return path


def test_a_domain_that_does_not_parse_names_file_line_and_the_records_using_it(repo):
    bad = _break_domain(repo)
    with pytest.raises(PddlFileError) as err:
        load_records(_cfg(repo))
    assert str(err.value) == (f"{bad}:20: action keywords and values must come in pairs 'drop'\n"
                              f"  used by 2 record(s): {repo}/data/grpo/delivery.jsonl:1, 2")


def test_a_problem_that_does_not_parse_is_skipped_and_counted_with_skip(repo, caplog):
    problem = repo / "pddl3/grippers/grippers-n1-r2-o1-s3.pddl"
    problem.write_text(problem.read_text().replace("(:goal", "(:goal (nope)", 1))
    with pytest.raises(PddlFileError, match=rf"^{problem}:\d+: .*\n  used by 1 record\(s\): .*grippers.jsonl:2$"):
        load_records(_cfg(repo))
    index = load_records(_cfg(repo, on_bad_record="skip"))
    assert len(index.domains["grippers"]) == 1 and index.skipped["grippers"] == 1
    assert "skipped 1 bad records ({'pddl': 1})" in caplog.text


def test_each_distinct_file_is_parsed_once(repo):
    check = PddlFileCheck()
    for _ in range(3):
        assert check.check(str(repo / "pddl3/grippers/domain3.pddl"),
                           str(repo / "pddl3/grippers/grippers-n1-r4-o3-s7.pddl")) is None
    assert check.parsed == 2
    off = PddlFileCheck("off")
    assert off.check("/nope.pddl", "/nope2.pddl") is None and off.parsed == 0


def test_check_pddl_off_loads_broken_pddl(repo):
    _break_domain(repo)
    assert len(load_records(_cfg(repo, check_pddl="off")).domains["delivery"]) == 2


@pytest.mark.parametrize(("field", "value", "message"), [
    ("reference_plan_length", "4", "meta.reference_plan_length must be an integer >= 0, got '4'"),
    ("reference_plan_length", 7.0, "meta.reference_plan_length must be an integer >= 0, got 7.0"),
    ("class_label", "great", "class_label must be one of"),
])
def test_fields_the_reward_reads_are_checked_at_load(repo, field, value, message):
    rec = json.loads((repo / "data/grpo/grippers.jsonl").read_text().splitlines()[0])
    if field == "class_label":
        rec[field] = value
    else:
        rec["meta"][field] = value
    (repo / "data/grpo/grippers.jsonl").write_text(json.dumps(rec) + "\n")
    with pytest.raises(RecordError, match=rf"grippers.jsonl:1: {message}"):
        load_records(_cfg(repo))


def test_preflight_checks_the_test_split_too(repo):
    test = repo / "data/grpo/test"
    test.mkdir()
    rec = json.loads((repo / "data/grpo/grippers.jsonl").read_text().splitlines()[0])
    (test / "grippers.jsonl").write_text(json.dumps(rec) + "\n")
    report = preflight(_cfg(repo))
    assert report.domains == ("blocksworld", "delivery", "grippers")
    assert report.records == {"train": {"blocksworld": 2, "delivery": 2, "grippers": 2}, "test": {"grippers": 1}}
    rec["meta"]["problem_file"] = "pddl3/grippers/missing.pddl"
    (test / "grippers.jsonl").write_text(json.dumps(rec) + "\n")
    with pytest.raises(RecordError, match=r"test/grippers.jsonl:1: meta.problem_file .* does not exist"):
        preflight(_cfg(repo))


def test_held_out_samples_follow_the_sampler_rules_and_skips(repo):
    from learner.eval.core import load_test_samples

    test = repo / "data/grpo/test"
    test.mkdir()
    good = json.loads((repo / "data/grpo/grippers.jsonl").read_text().splitlines()[0])
    (test / "grippers.jsonl").write_text(json.dumps(good) + "\n{not json\n" + json.dumps(good) + "\n")
    (test / "combined.jsonl").write_text("{}\n")
    with pytest.raises(RecordError, match=r"test/grippers.jsonl:2: invalid JSON"):
        load_test_samples(repo / "data/grpo", ["grippers"], sampler=_cfg(repo))
    samples = load_test_samples(repo / "data/grpo", ["grippers"], sampler=_cfg(repo, on_bad_record="skip"))
    assert [s["sample_id"] for s in samples] == ["test:grippers:0", "test:grippers:1"]
    assert samples[0]["meta"]["problem_file"] == good["meta"]["problem_file"]
