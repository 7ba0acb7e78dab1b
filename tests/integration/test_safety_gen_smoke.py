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
