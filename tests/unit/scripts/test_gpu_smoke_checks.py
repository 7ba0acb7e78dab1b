"""scripts/gpu_smoke_checks.py on CPU: the numbers and assertions scripts/gpu_smoke.sh reads from a GPU run."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from learner.driver.step_metrics import MetricsWriter

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("gpu_smoke_checks", ROOT / "scripts" / "gpu_smoke_checks.py")
gsc = importlib.util.module_from_spec(_spec)
sys.modules["gpu_smoke_checks"] = gsc
_spec.loader.exec_module(gsc)


def test_logprob_gap_is_the_mean_and_max_of_per_token_differences():
    gap = gsc.logprob_gap([[-1.0, -2.0], [-0.5]], [[-1.01, -1.97], [-0.5]])
    assert gap.tokens == 3
    assert gap.mean_abs == pytest.approx((0.01 + 0.03 + 0.0) / 3)
    assert gap.max_abs == pytest.approx(0.03)


@pytest.mark.parametrize("a, b, message", [
    ([[-1.0]], [[-1.0], [-2.0]], "1 rows against 2"),
    ([[-1.0, -2.0]], [[-1.0]], "row 0 has 2 logprobs against 1"),
    ([[]], [[]], "no tokens"),
    ([[float("nan")]], [[-1.0]], "nan"),
])
def test_logprob_gap_refuses_rows_that_do_not_line_up(a, b, message):
    with pytest.raises(ValueError, match=message):
        gsc.logprob_gap(a, b)


def test_sleep_freed_share():
    gib = 2**30
    assert gsc.sleep_freed_share(100 * gib, 60 * gib, 98 * gib) == pytest.approx(38 / 40)
    with pytest.raises(ValueError, match="took no GPU memory"):
        gsc.sleep_freed_share(60 * gib, 60 * gib, 60 * gib)


def _write_run(run_dir: Path, steps: list[dict]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    writer = MetricsWriter(run_dir)  # the run's own writer: the file the smoke test reads is this format
    writer.write({"event": "eval", "eval/success": 0.1})  # not a step record: ignored
    for s in steps:
        writer.write(s)
    return run_dir


STEP = {"time/step": 1.5, "is_weight/mean": 1.01, "is_weight/min": 0.8, "is_weight/max": 1.2,
        "memory/peak_allocated_gib": 3.5}


def test_colocated_run_metrics_pass_and_every_number_is_reported(tmp_path: Path):
    from learner.driver.step_metrics import read_metrics

    run = _write_run(tmp_path / "run", [{"step": s, **STEP, "time/sleep": 0.4, "time/wake": 0.6} for s in (0, 1)])
    out = gsc.run_metric_checks(read_metrics(run), colocated=True)
    assert out["steps"] == 2
    assert out["step1/is_weight/mean"] == pytest.approx(1.01)
    assert out["step0/time/sleep"] == pytest.approx(0.4) and out["step1/time/wake"] == pytest.approx(0.6)
    assert out["step0/memory/peak_allocated_gib"] == pytest.approx(3.5)


@pytest.mark.parametrize("change, colocated, message", [
    ({"is_weight/mean": 0.5}, False, r"step 1 is_weight/mean 0.5000 is outside \[0.7, 1.4\]"),
    ({"is_weight/mean": 1.5}, False, "outside"),
    ({"is_weight/mean": None}, False, "step 1 has no is_weight/mean"),
    ({}, True, "step 1 has no time/sleep: the colocated engine did not sleep/wake"),
])
def test_run_metrics_fail_naming_the_step_and_key(tmp_path: Path, change: dict, colocated: bool, message: str):
    from learner.driver.step_metrics import read_metrics

    second = {"step": 1, **STEP, **change}
    second = {k: v for k, v in second.items() if v is not None}
    first = {"step": 0, **STEP, "time/sleep": 0.1, "time/wake": 0.1}
    run = _write_run(tmp_path / "run", [first, second])
    with pytest.raises(gsc.SmokeCheckFailed, match=message):
        gsc.run_metric_checks(read_metrics(run), colocated=colocated, where=str(run / "metrics.jsonl"))


def test_a_run_without_step_records_fails(tmp_path: Path):
    with pytest.raises(gsc.SmokeCheckFailed, match="no step records"):
        gsc.run_metric_checks([], colocated=False)


def test_cli_prints_one_number_per_line_and_exits_1_on_failure(tmp_path: Path):
    ok = _write_run(tmp_path / "ok", [{"step": 0, **STEP}])
    run = subprocess.run([sys.executable, "scripts/gpu_smoke_checks.py", "run-metrics", str(ok)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "run/step0/is_weight/mean 1.01" in lines and "run/steps 1" in lines
    assert all(len(line.split()) == 2 for line in lines)
    bad = _write_run(tmp_path / "bad", [{"step": 0, **STEP}])
    run = subprocess.run([sys.executable, "scripts/gpu_smoke_checks.py", "run-metrics", str(bad), "--colocated"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert "FAILED:" in run.stderr and "metrics.jsonl: step 0 has no time/sleep" in run.stderr


def test_new_gpu_processes_from_nvidia_smi_output():
    before = gsc.parse_gpu_pids("1234\n5678\n")
    now = gsc.parse_gpu_pids("1234\n 9012 \nNo running processes found\n")
    assert before == {1234, 5678}
    assert gsc.new_gpu_pids(before, now) == {9012}
