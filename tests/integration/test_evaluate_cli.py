"""`python -m learner.evaluate` on a checkpoint trained by a smoke run: rates in [0, 1], CIs, bucket counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from learner.config.run import load_config
from learner.driver.pipeline import run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_evaluate_a_trained_checkpoint(tmp_path: Path) -> None:
    from sampler.datagen.builder import build_dataset

    data = tmp_path / "data"
    build_dataset(data, per_domain=10, sizes="tiny", prompt_style="compact", test_fraction=0.3, seed=3)
    out = tmp_path / "run"
    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml", [
        f"output_dir={out}", f"sampler.data_root={data}", "logging.progress_bar=false", "cluster.num_cpus=3",
    ])
    assert run(cfg, smoke=True) == 0
    checkpoint = out / "checkpoints" / "step-1"
    report_file = tmp_path / "eval.json"
    proc = subprocess.run(
        [sys.executable, "-m", "learner.evaluate", "--checkpoint", str(checkpoint), "--data-root", str(data),
         "--num-samples", "2", "--temperature", "1.0", "--max-new-tokens", "24", "--validator", "native",
         "--out", str(report_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "overall" in proc.stdout
    report = json.loads(report_file.read_text())
    assert report["model"]["adapter"] == str(checkpoint)
    problems = sum(len(f.read_text().splitlines()) for f in (data / "test").glob("*.jsonl"))
    assert report["overall"]["problems"] == problems and report["overall"]["n"] == 2 * problems
    for result in [report["overall"], *report["domains"].values(), *report["buckets"].values()]:
        assert 0.0 <= result["success_rate"] <= 1.0 and 0.0 <= result["pass_at_k"] <= 1.0
        lo, hi = result["ci95"]
        assert lo <= result["success_rate"] <= hi
        assert sum(result["labels"].values()) == result["n"]
    assert sum(b["n"] for b in report["buckets"].values()) == report["overall"]["n"]


def test_evaluate_rejects_a_folder_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "learner.evaluate", "--checkpoint", str(tmp_path), "--data-root", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "not a checkpoint" in proc.stderr
