"""scripts/gpu_extra_report.py: the checks scripts/check_gpu_extra.sh runs on pip's resolution of .[gpu]."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[3]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


ger = _load("gpu_extra_report")
tomllib = pytest.importorskip("tomllib")  # Python 3.11+
PINS = ger.CiPins(vllm="0.32.0", torch="2.13.0", transformers=SpecifierSet(">=5.16.1,<5.20"))


def _good_set() -> dict:
    D = ger.Dist
    return {
        "pddl-grpo": D("0.1.0", ("torch<2.15,>=2.4", 'vllm==0.32.0; extra == "gpu"',
                                 'transformers<=5.17.0,>=5.16.1; extra == "gpu"', 'pytest>=8; extra == "dev"'),
                       ("gpu",)),
        "vllm": D("0.32.0", ("torch==2.13.0", "transformers<5.20.0,>=5.16.1")),
        "unsloth": D("2026.10.9", ("transformers<=5.17.0,>=4.52.4", "trl<=1.15.0,>=0.18.2",
                                   'transformers<5; extra == "test"')),
        "unsloth-zoo": D("2026.10.9"),
        "bitsandbytes": D("0.50.2", ("torch<3,>=2.4",)),
        "torch": D("2.13.0+cu130"),
        "transformers": D("5.17.0"),
        "trl": D("1.15.0", ("transformers>=4.56.2",)),
        "peft": D("0.21.2"),
    }


def test_a_consistent_set_has_no_problem():
    assert ger.check_set(_good_set(), PINS) == []


def test_a_requirement_the_set_breaks_is_named_with_both_versions():
    dists = _good_set()
    dists["transformers"] = ger.Dist("5.20.0")
    problems = ger.check_set(dists, PINS)
    assert "unsloth 2026.10.9 requires transformers<=5.17.0,>=4.52.4, the set has transformers 5.20.0" in problems
    assert any(p.startswith("vllm 0.32.0 requires transformers<5.20.0,>=5.16.1") for p in problems)
    assert any("outside <5.20,>=5.16.1" in p for p in problems)  # the CI range too


def test_only_the_extras_asked_for_count():
    dists = _good_set()
    dists["pytest"] = ger.Dist("7.0")  # pddl-grpo[dev] would need >=8, but dev was not asked for
    assert ger.requirement_conflicts(dists) == []
    dists["vllm"] = ger.Dist("0.31.0", ("torch==2.13.0",))  # the gpu extra's own pin is checked
    assert "pddl-grpo 0.1.0 requires vllm==0.32.0, the set has vllm 0.31.0" in ger.requirement_conflicts(dists)


def test_missing_packages_and_versions_ci_does_not_test():
    dists = _good_set()
    del dists["bitsandbytes"]
    dists["vllm"] = ger.Dist("0.33.0")
    dists["torch"] = ger.Dist("2.14.0")
    problems = ger.check_set(dists, PINS)
    assert "bitsandbytes is not in the set (the [gpu] extra lists it or needs it)" in problems
    assert any(p.startswith("vllm 0.33.0 is not the 0.32.0 that .ci/vllm_cpu.sh tests") for p in problems)
    assert any(p.startswith("torch 2.14.0 is not the 2.13.0 that .ci/run installs") for p in problems)


def test_local_build_tags_are_the_same_release_and_prereleases_are_not():
    assert ger.base_version("2.13.0+cu130") == "2.13.0"
    assert ger.base_version("0.66b2") == "0.66b2"
    dists = {"a": ger.Dist("1", ("b==0.66b2",)), "b": ger.Dist("0.66b2")}
    assert ger.requirement_conflicts(dists) == []


def test_report_json_is_read_with_requested_extras():
    report = {"install": [
        {"metadata": {"name": "pddl-grpo", "version": "0.1.0", "requires_dist": ['vllm==0.32.0; extra == "gpu"']},
         "requested_extras": ["gpu"]},
        {"metadata": {"name": "Unsloth_Zoo", "version": "2026.10.9"}},
    ]}
    dists = ger.dists_from_report(report)
    assert dists["pddl-grpo"].extras == ("gpu",)
    assert dists["unsloth-zoo"].version == "2026.10.9"  # names canonicalised


def test_ci_pins_are_read_from_the_ci_scripts_and_match_the_gpu_extra():
    pins = ger.read_ci_pins(ROOT)
    extra = [Requirement(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())
             ["project"]["optional-dependencies"]["gpu"]]
    by_name = {r.name.lower(): r for r in extra}
    assert set(by_name) >= {"vllm", "unsloth", "bitsandbytes", "transformers", "trl"}
    assert str(by_name["vllm"].specifier) == f"=={pins.vllm}"
    # the newest transformers the extra allows is one the vllm tests run with on CPU
    newest = [s.version for s in by_name["transformers"].specifier if s.operator == "<="]
    assert newest and all(pins.transformers.contains(v) for v in newest)


def test_ci_pins_missing_name_the_file(tmp_path: Path):
    (tmp_path / ".ci").mkdir()
    (tmp_path / ".ci" / "vllm_cpu.sh").write_text('VLLM_VERSION="0.32.0"\n')
    (tmp_path / ".ci" / "run").write_text("python3 -m pip install -q torch==2.13.0\n")
    with pytest.raises(ValueError, match=r"\.ci: cannot read TRANSFORMERS_SPEC"):
        ger.read_ci_pins(tmp_path)


def test_conflict_lines_keep_pips_error_and_conflict_block():
    log = "\n".join([
        "Collecting vllm==0.32.0", "INFO: pip is looking at multiple versions of unsloth",
        "ERROR: Cannot install pddl-grpo[gpu]==0.1.0 and transformers>=5.20 because these package versions have "
        "conflicting dependencies.", "", "The conflict is caused by:", "    The user requested transformers>=5.20",
        "    unsloth 2026.10.9 depends on transformers<=5.17.0", "", "To fix this you could try to:",
        "ERROR: ResolutionImpossible: for help visit https://pip.pypa.io"])
    assert ger.conflict_lines(log) == [
        "ERROR: Cannot install pddl-grpo[gpu]==0.1.0 and transformers>=5.20 because these package versions have "
        "conflicting dependencies.",
        "ERROR: ResolutionImpossible: for help visit https://pip.pypa.io",
        "The user requested transformers>=5.20", "unsloth 2026.10.9 depends on transformers<=5.17.0"]
