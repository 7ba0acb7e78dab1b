"""build_dataset and the CLI: layout, records, byte-identical re-runs, disjoint splits, early errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sampler.build_data import main as cli_main
from sampler.datagen.builder import build_dataset, held_out_count
from sampler.datagen.domains import DOMAIN_NAMES, DomainSizeError, get_generator
from sampler.datagen.sizes import parse_sizes, settings_for

SMALL = dict(per_domain=5, sizes="tiny", test_fraction=0.4, seed=3)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    build_dataset(out, **SMALL)
    return out


def test_layout_and_records(built):
    meta = json.loads((built / "metadata.json").read_text())
    for d in DOMAIN_NAMES:
        train, test = _records(built / f"{d}.jsonl"), _records(built / "test" / f"{d}.jsonl")
        assert (len(train), len(test)) == (3, 2) == (meta["domains"][d]["train"], meta["domains"][d]["test"])
        assert (built / "pddl" / d / "domain.pddl").is_file()
        for r in train + test:
            m = r["meta"]
            assert r["class_label"] == "success_plans" and m["scenario"] == d
            assert m["domain_file"] == f"pddl/{d}/domain.pddl"
            problem = built / m["problem_file"]
            assert problem.is_file() and m["problem_file"].startswith(f"pddl/{d}/")
            assert get_generator(d).parse_name(problem.name) == (m["params"], m["seed"])
            soln = problem.with_suffix(".soln").read_text()
            assert soln == r["response"] and len(soln.splitlines()) == m["reference_plan_length"]
            assert m["reference_plan_optimal"] is True
            assert problem.read_text() in r["prompt"] and "one action per line" in r["prompt"]
        assert sum(c["train"] + c["test"] for c in meta["domains"][d]["per_setting"].values()) == 5


def test_train_and_test_are_disjoint(built):
    for d in DOMAIN_NAMES:
        train, test = _records(built / f"{d}.jsonl"), _records(built / "test" / f"{d}.jsonl")
        train_files = {r["meta"]["problem_file"] for r in train}
        test_files = {r["meta"]["problem_file"] for r in test}
        assert not train_files & test_files
        body = lambda fs: {(built / f).read_text().split("\n", 1)[1] for f in fs}  # noqa: E731
        assert not body(train_files) & body(test_files)  # not the same problem under another name either


def test_rerun_is_byte_identical_and_independent_of_workers(built, tmp_path, data_tree):
    build_dataset(tmp_path / "again", **SMALL)
    assert data_tree(tmp_path / "again") == data_tree(built)
    build_dataset(tmp_path / "par", workers=2, **SMALL)
    assert data_tree(tmp_path / "par") == data_tree(built)


def test_rebuild_into_same_folder_removes_old_problems(tmp_path):
    build_dataset(tmp_path, domains=["ferry"], per_domain=4, sizes="tiny", seed=1)
    build_dataset(tmp_path, domains=["ferry"], per_domain=2, sizes="tiny", seed=2)
    assert len(list((tmp_path / "pddl" / "ferry").glob("*.soln"))) == 2


def test_constraints_off_and_on(tmp_path):
    build_dataset(tmp_path / "off", domains=["grippers"], per_domain=4, sizes="tiny", constraints="off")
    build_dataset(tmp_path / "on", domains=["grippers"], per_domain=4, sizes="tiny", constraints="on")
    off = _records(tmp_path / "off" / "grippers.jsonl")
    on = _records(tmp_path / "on" / "grippers.jsonl")
    assert all(not r["meta"]["constraints"] and "(:constraints (" not in r["prompt"] for r in off)
    assert all(r["meta"]["constraints"] and "(:constraints (" in r["prompt"] for r in on)


def test_compact_prompt_is_parenthesis_free(tmp_path):
    build_dataset(tmp_path, domains=["blocksworld", "delivery"], per_domain=3, sizes="tiny", prompt_style="compact",
                  constraints="on", test_fraction=0.0)
    for d in ("blocksworld", "delivery"):
        for r in _records(tmp_path / f"{d}.jsonl"):
            p = r["prompt"]
            assert p.startswith(f"domain {d} init ") and " goal " in p and " constraints " in p and p.endswith(" plan")
            assert "(" not in p and ")" not in p
            assert "adjacent" not in p  # static grid left out
            assert r["response"].startswith("(")


def test_symbolized_renames_files_consistently(tmp_path):
    build_dataset(tmp_path, domains=["spanner", "grippers"], per_domain=3, sizes="tiny", prompt_style="symbolized",
                  test_fraction=0.0)
    for d, words in (("spanner", ("tighten_nut", "spanner1", "(at ", "location")), ("grippers", ("pick", "ball1"))):
        dom = (tmp_path / "pddl" / d / "domain.pddl").read_text()
        for r in _records(tmp_path / f"{d}.jsonl"):
            prob = (tmp_path / r["meta"]["problem_file"]).read_text()
            for w in words:
                assert w not in dom.split("(:requirements")[1] + prob.split("\n", 1)[1] + r["response"]
            assert dom in r["prompt"] and prob in r["prompt"]
            # the builder's VAL check already accepted these renamed files; the plan uses renamed actions
            assert r["response"].startswith("(act")


def test_held_out_count():
    assert held_out_count(500, 0.1) == 50 and held_out_count(5, 0.1) == 1 and held_out_count(5, 0.0) == 0
    with pytest.raises(ValueError, match="leaves none for training"):
        held_out_count(1, 0.5)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(domains=["ferry", "sokoban"]), ValueError, "unknown domain 'sokoban'"),
        (dict(sizes="spanner:s=1,n=2-3"), DomainSizeError, "nuts n=2 > spanners s=1"),
        (dict(sizes="delivery:s=1,p=3"), DomainSizeError, "grid side s=1"),
        (dict(sizes="huge"), ValueError, "neither a preset"),
        (dict(sizes="ferry:l=4-2"), ValueError, "is empty"),
        (dict(prompt_style="xml"), ValueError, "prompt_style"),
        (dict(constraints="some"), ValueError, "constraints"),
        (dict(test_fraction=1.0), ValueError, "test_fraction"),
        (dict(per_domain=0), ValueError, "per_domain"),
    ],
)
def test_bad_input_fails_before_any_work(kwargs, error, message, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(error, match=message):
        build_dataset(out, **kwargs)
    assert not out.exists()


def test_cli_reports_bad_input(tmp_path, capsys):
    assert cli_main(["--out", str(tmp_path / "x"), "--domains", "blocksworld,chess"]) == 2
    assert "unknown domain 'chess'" in capsys.readouterr().err
    assert cli_main(["--out", str(tmp_path / "x"), "--sizes", "spanner:s=2,n=3,l=2"]) == 2
    assert "nuts n=3 > spanners s=2" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cli_builds(tmp_path, capsys):
    rc = cli_main(["--out", str(tmp_path), "--domains", "ferry", "--per-domain", "3", "--sizes", "ferry:l=2,c=1-2",
                   "--no-progress", "--seed", "4"])
    assert rc == 0 and "ferry 3+0" in capsys.readouterr().out
    assert {r["meta"]["params"]["l"] for r in _records(tmp_path / "ferry.jsonl")} == {2}


def test_presets_span_easy_to_hard():
    for d in DOMAIN_NAMES:
        tiny, default, large = (settings_for(d, parse_sizes(p, [d])[d]) for p in ("tiny", "default", "large"))
        size = lambda ps: max(sum(p.values()) for p in ps)  # noqa: E731
        assert size(tiny) <= size(default) <= size(large) and len(default) >= 2
