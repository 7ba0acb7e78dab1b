"""`ray job submit` of a 2-step smoke run to a running Ray head, with token authentication on."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path: Path):
    """A Ray head started with `ray start --head --block` (token auth on), stopped by signalling that process."""
    ray_bin = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    # the CLI talks to this head by its address only: no RAY_ADDRESS (tests set it to "local")
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "RAY_AUTH_MODE": "token"}
    dashboard = _free_port()
    head = subprocess.Popen(
        [ray_bin, "start", "--head", "--block", f"--port={_free_port()}", "--num-cpus=4",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--include-dashboard=true",
         # own ports for the node's agents, so a Ray left running on this machine cannot block them
         f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
         f"--metrics-export-port={_free_port()}", f"--runtime-env-agent-port={_free_port()}",
         "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    address = f"http://127.0.0.1:{dashboard}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        probe = subprocess.run([ray_bin, "job", "list", "--address", address], env=env, capture_output=True,
                               text=True, timeout=60)
        if probe.returncode == 0:
            break
        time.sleep(2)
    else:
        head.terminate()
        pytest.fail("the Ray head's job API did not come up within 120 s")
    try:
        yield ray_bin, address, env
    finally:
        head.terminate()  # `ray start --block` stops the processes it started when it is signalled
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, 9)
            head.wait()


def test_ray_job_submit_runs_a_smoke_run(ray_head, tmp_path: Path) -> None:
    from sampler.datagen.builder import build_dataset

    ray_bin, address, env = ray_head
    data = tmp_path / "data"
    build_dataset(data, per_domain=10, sizes="tiny", prompt_style="compact", test_fraction=0.2, seed=2)
    out = tmp_path / "run"
    cmd = [
        ray_bin, "job", "submit", "--address", address, "--working-dir", str(ROOT), "--",
        "python", "-m", "learner.main", "--smoke", f"output_dir={out}", f"sampler.data_root={data}",
        "logging.progress_bar=false", "cluster.learner_num_cpus=1", "rollout.num_cpus_per_actor=1",
    ]
    for _ in range(20):  # the job API answers before the node's job agent is up
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode == 0 or "No available agent" not in proc.stdout + proc.stderr:
            break
        time.sleep(3)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in proc.stdout.lower()
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1]
    assert (out / "checkpoints" / "step-1" / "state.json").exists()
