"""Safety-gen data as it is: their layout through the importer, pddl_root, ignored files, presets and preview."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sampler import import_safety_gen, preview
from sampler.config import SamplerConfig
from sampler.records import load_records

THEIRS = Path(__file__).resolve().parents[2] / "fixtures" / "safety_gen"


@pytest.fixture
def imported(tmp_path, capsys) -> Path:
    out = tmp_path / "data"
    assert import_safety_gen.main([str(THEIRS), "--out", str(out)]) == 0
    return out


def test_importer_rewrites_paths_adds_gold_plans_and_says_what_it_skipped(imported, capsys):
    printed = capsys.readouterr().out
    assert "took 6 records of 3 domains" in printed
    assert "skipped data/grpo/combined.jsonl (not a domain's records)" in printed
    assert "skipped data/grpo/metadata.json (not records)" in printed
    assert "checked: 6 records load, every PDDL file parses" in printed
    assert sorted(p.name for p in imported.glob("*.jsonl")) == ["blocksworld.jsonl", "delivery.jsonl", "grippers.jsonl"]
    rec = json.loads((imported / "grippers.jsonl").read_text().splitlines()[0])
    meta = rec["meta"]
    assert meta["domain_file"] == "pddl/grippers/domain3.pddl"
    assert meta["problem_file"] == "pddl/grippers/grippers-n1-r4-o3-s7.pddl"
    assert (meta["scenario"], meta["problem_id"], meta["reference_plan_length"]) == (
        "grippers", "grippers-n1-r4-o3-s7", 8)
    assert rec["response"].splitlines()[0] == "(pick robot1 ball1 rooma left)" and rec["class_label"] == "success_plans"
    assert (imported / "pddl/grippers/grippers-n1-r4-o3-s7.soln").is_file()
    assert json.loads((imported / "import.json").read_text())["domains"] == {"blocksworld": 2, "delivery": 2,
                                                                            "grippers": 2}


def test_importer_builds_records_from_problem_files_when_a_domain_has_no_jsonl(tmp_path, capsys):
    src = tmp_path / "src"
    shutil.copytree(THEIRS, src)
    (src / "data/grpo/grippers.jsonl").unlink()
    import_safety_gen.main([str(src), "--out", str(tmp_path / "out"), "--domains", "grippers"])
    assert "grippers           2 records  from problem files in pddl3/grippers/" in capsys.readouterr().out
    rec = json.loads((tmp_path / "out/grippers.jsonl").read_text().splitlines()[0])
    assert "(define (domain grippers)" in rec["prompt"] and rec["meta"]["problem_file"].startswith("pddl/grippers/")


def test_their_layout_loads_as_is_with_pddl_root_and_surplus_paren_warns(caplog):
    cfg = SamplerConfig(data_root=str(THEIRS / "data/grpo"), pddl_root=str(THEIRS), batch_size=3)
    with caplog.at_level("WARNING"):
        index = load_records(cfg)
    assert list(index.domains) == ["blocksworld", "delivery", "grippers"]  # combined.jsonl is no domain
    assert "ignoring 2 file(s) that are not a domain's records: combined.jsonl, metadata.json" in caplog.text
    assert (f"{THEIRS}/pddl3/delivery/domain3.pddl:24: 1 surplus ')' after the end of the definition (line 24) "
            "ignored, as VAL ignores them") in caplog.text
    # without pddl_root the repo-root-relative paths do not exist under the data root
    with pytest.raises(ValueError, match="does not exist under pddl_root"):
        load_records(SamplerConfig(data_root=str(THEIRS / "data/grpo")))


def test_pddl_root_keeps_the_escape_check(tmp_path):
    shutil.copytree(THEIRS, tmp_path / "repo")
    path = tmp_path / "repo/data/grpo/grippers.jsonl"
    rec = json.loads(path.read_text().splitlines()[0])
    rec["meta"]["problem_file"] = "../outside.pddl"
    (tmp_path / "outside.pddl").write_text("(define (problem x) (:domain grippers) (:goal (and)))")
    path.write_text(json.dumps(rec) + "\n")
    cfg = SamplerConfig(data_root=str(tmp_path / "repo/data/grpo"), pddl_root=str(tmp_path / "repo"))
    with pytest.raises(ValueError, match=r"grippers.jsonl:1: meta.problem_file '../outside.pddl' escapes pddl_root"):
        load_records(cfg)


@pytest.mark.parametrize(("preset", "scores"), [
    ("seed_doc", {"bw_ops3_n4_seed101": 23, "grippers-n1-r4-o3-s7": 26, "delivery-s2-p2-seed5": 21}),
    ("safety_gen_code", {"bw_ops3_n4_seed101": 16, "grippers-n1-r4-o3-s7": 12, "delivery-s2-p2-seed5": 4}),
])
def test_preview_of_their_data_with_a_named_difficulty_preset(preset, scores, capsys):
    preview.main(["--data-root", str(THEIRS / "data/grpo"), "--pddl-root", str(THEIRS), "--batch-size", "3",
                  "--steps", "2", "--difficulty", preset, "--json"])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    seen = {Path(s["problem_file"]).stem: s["difficulty_score"] for line in lines[:-1] for s in line["samples"]}
    assert all(seen[k] == v for k, v in scores.items() if k in seen) and seen
    assert [sorted(s["domain"] for s in line["samples"]) for line in lines[:-1]] == [
        ["blocksworld", "delivery", "grippers"]] * 2


def test_preview_of_the_imported_data(imported, capsys):
    capsys.readouterr()
    preview.main(["--data-root", str(imported), "--batch-size", "3", "--steps", "1"])
    out = capsys.readouterr().out
    assert "domains blocksworld=1 delivery=1 grippers=1" in out
