"""Safety-gen data end to end: imported, a --smoke run trains; one domain's PDDL broken, it stops before model load."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
THEIRS = ROOT / "tests" / "fixtures" / "safety_gen"

pytestmark = pytest.mark.integration


def _smoke(data: Path, runs: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "learner.main", "--smoke", f"sampler.data_root={data}", "sampler.batch_size=3",
           f"runs_root={runs}", "logging.progress_bar=false", *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture
def imported(tmp_path) -> Path:
    out = tmp_path / "data"
    subprocess.run([sys.executable, "-m", "sampler.import_safety_gen", str(THEIRS), "--out", str(out)],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    return out


@pytest.mark.slow
def test_smoke_run_on_imported_safety_gen_data(imported, tmp_path):
    done = _smoke(imported, tmp_path / "runs")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "surplus ')' after the end of the definition" in done.stderr
    run_dir = next((tmp_path / "runs").iterdir())
    assert (run_dir / "checkpoints" / "step-1").is_dir()


def test_smoke_run_whose_domain_does_not_parse_stops_before_model_load(imported, tmp_path):
    domain = imported / "pddl/delivery/domain3.pddl"
    domain.write_text(domain.read_text().replace("(:action drop", "(:action drop (", 1))
    t0 = time.monotonic()
    done = _smoke(imported, tmp_path / "runs")
    assert done.returncode == 2
    assert (f"error: bad data, nothing was trained: {domain}:20: action keywords and values must come in pairs "
            f"'drop'\n  used by 2 record(s): {imported}/delivery.jsonl:1, 2") in done.stderr
    run_dir = next((tmp_path / "runs").iterdir())
    assert not (run_dir / "tiny_model").exists() and "Started a local Ray" not in done.stderr
    assert time.monotonic() - t0 < 60


def test_run_whose_validator_always_fails_for_one_domain_stops_after_max_none_steps(imported, tmp_path):
    """Grippers' goal is too big to ground: every grippers plan that reaches the native validator scores None.

    The files parse, so the pre-flight lets them through; the guard must stop the run after
    reward.max_none_steps steps, naming the domain, the validator's error and the files. The SFT stage
    is long enough (150 steps) for the tiny model to write well-formed action lines that reach the
    validator (after 40 steps most were broken lines, which the extractor decides before any validator,
    so the guard never counted); the other domains keep scoring numbers, so only grippers is all-None.
    """
    for problem in (imported / "pddl/grippers").glob("*.pddl"):
        if problem.name == "domain3.pddl":
            continue
        text = problem.read_text()
        assert "(:goal (and" in text
        problem.write_text(text.replace(
            "(:goal (and", "(:goal (and (forall (?a ?b ?c ?d ?e ?f ?g - object) (not (at-robby ?a ?b)))", 1))
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "learner.main", f"sampler.data_root={imported}", "sampler.batch_size=3",
           f"runs_root={runs}", "logging.progress_bar=false", "reward.validator=native", "reward.max_none_steps=2",
           "max_steps=8", "sampler.max_steps=8", "sft.steps=150", "sft.minutes=null",
           "eval.before_after=false", "rollout.num_generations=2"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("error: run stopped: domain 'grippers': every completion that reached the validator "
                              "scored None for 2 consecutive steps"), message
    assert "reward.max_none_steps=2" in message and "over the grounding budget" in message
    assert "problem 'pddl/grippers/grippers-n1-" in message
    run_dir = next(runs.iterdir())
    steps = [line for line in (run_dir / "reward_debug.log").read_text().splitlines() if "\tSUMMARY\t" in line]
    assert 2 <= len(steps) < 8  # it stopped before the end, once the guard had its steps
    grippers = [line for line in (run_dir / "reward_debug.log").read_text().splitlines()
                if "\tdomain=grippers\t" in line and "reward=None" in line]
    assert grippers, "no grippers completion reached the validator"
