"""Issue 20's must-show: a --smoke run trains on a sixth domain with :action-costs scored by the native validator,
and on one with :durative-actions scored by VAL, both under reward.validator: auto (the default).

A tiny model warm-started by 2 SFT steps writes no action line, so no validator would ever be called: the module
first warm-starts one tiny model on all seven domains (`python -m learner.sft`, ~150 steps, 2-3 min on 2 CPUs) and
both runs start from it (learner.base_model, sft.enabled=false).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SIXTH = ROOT / "tests" / "fixtures" / "sixth_domain"
FIVE = ["blocksworld", "delivery", "ferry", "grippers", "spanner"]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def data_and_model(tmp_path_factory) -> tuple[Path, Path]:
    """Five generated domains plus roads and rovers (tests/fixtures/sixth_domain), and a tiny model SFT'd on them."""
    from sampler.datagen.builder import build_dataset

    base = tmp_path_factory.mktemp("any_domain")
    data = base / "data"
    build_dataset(data, per_domain=20, sizes="tiny", prompt_style="compact", test_fraction=0.1, seed=3407,
                  progress=False)
    for name in ("roads", "rovers"):
        shutil.copytree(SIXTH / name, data / "pddl" / name, ignore=shutil.ignore_patterns("records.jsonl"))
        shutil.copy(SIXTH / name / "records.jsonl", data / f"{name}.jsonl")
    model = base / "model"
    subprocess.run([sys.executable, "-m", "learner.sft", "--model", "tiny", "--data-root", str(data), "--out",
                    str(model), "--steps", "150", "--lr", "2e-3", "--seed", "1"],
                   cwd=ROOT, check=True, capture_output=True, text=True, timeout=900)
    return data, model


def _smoke(data: Path, model: Path, runs: Path, sixth: str) -> tuple[Path, Counter]:
    cmd = [sys.executable, "-m", "learner.main", "--smoke", f"sampler.data_root={data}", f"runs_root={runs}",
           f"sampler.domains=[{','.join([*FIVE, sixth])}]", "sampler.batch_size=6", "sampler.difficulty=plan_length",
           f"learner.base_model={model}", "sft.enabled=false", "logging.progress_bar=false"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = next(runs.iterdir())
    assert (run_dir / "checkpoints" / "step-1").is_dir()  # the second of 2 steps (0-based)
    scored = Counter()
    for path in (run_dir / "samples").iterdir():
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            scored[(rec["domain"], rec["validator"])] += 1
    return run_dir, scored


def test_action_costs_domain_is_trained_and_scored_by_native(data_and_model, tmp_path):
    data, model = data_and_model
    run_dir, scored = _smoke(data, model, tmp_path / "runs", "roads")
    log = (run_dir / "run.log").read_text()
    assert "pre-flight: domain roads: validator native for 3 task(s)" in log
    assert scored[("roads", "native")] > 0 and scored[("roads", "val")] == 0, scored
    assert "roads" in (run_dir / "reward_debug.log").read_text()
    steps = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    assert [s["batch/domain_counts"].get("roads") for s in steps if "batch/domain_counts" in s] == [1, 1]


def test_durative_domain_is_scored_by_val_under_auto(data_and_model, tmp_path):
    data, model = data_and_model
    run_dir, scored = _smoke(data, model, tmp_path / "runs", "rovers")
    log = (run_dir / "run.log").read_text()
    assert "pre-flight: domain rovers: validator val for 3 task(s): it uses :durative-actions" in log
    assert "VAL will be used (reward.validator: auto)" in log
    assert scored[("rovers", "val")] > 0 and scored[("rovers", "native")] == 0, scored
    assert scored[("ferry", "val")] == 0  # the five stay on native
