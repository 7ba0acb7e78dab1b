"""The whole training loop on a local Ray cluster with a tiny model: sync, async, a killed rollout actor, resume."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import ray

from learner.config.run import load_config
from learner.driver.pipeline import run
from sampler.stream import BalancedBatchStream

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
REQUIRED_KEYS = [
    "step", "reward/mean", "reward/std", "labels", "batch/domain_counts", "frac_zero_std_groups",
    "learner/loss", "learner/kl", "learner/entropy", "clip_ratio/region_mean", "completion/length_mean",
    "completion/length_max", "completion/truncated_share", "policy_version_lag", "rollout/tokens_per_second",
    "time/sample", "time/rollout", "time/reward", "time/learn", "time/weight_sync",
]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sampler.datagen.builder import build_dataset

    root = tmp_path_factory.mktemp("data")
    build_dataset(root, per_domain=12, sizes="tiny", prompt_style="compact", test_fraction=0.2, seed=1)
    return root


def _overrides(data_root: Path, out: Path, **extra: object) -> list[str]:
    base = {
        "output_dir": str(out), "sampler.data_root": str(data_root), "max_steps": 3, "save_steps": 2,
        "rollout.num_generations": 2, "rollout.max_new_tokens": 24, "sft.steps": 2, "sft.minutes": "null",
        "eval.before_after": "false", "logging.progress_bar": "false", "reward.num_workers": 1,
        "cluster.num_cpus": 4, "cluster.learner_num_cpus": 1, "rollout.num_cpus_per_actor": 1,
    }
    base.update({k: v for k, v in extra.items()})
    return [f"{k}={v}" for k, v in base.items()]


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _expected_batches(cfg_sampler, steps: range) -> list[list[str]]:
    stream = BalancedBatchStream.from_config(cfg_sampler)
    try:
        return [[s["sample_id"] for s in stream.batch(t)] for t in steps]
    finally:
        stream.close()


def test_sync_steps_write_every_metric_and_a_checkpoint(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "sync"
    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml", _overrides(data_root, out, mode="sync"))
    assert run(cfg) == 0
    records = _records(out)
    assert [r["step"] for r in records] == [0, 1, 2]
    for record in records:
        missing = [k for k in REQUIRED_KEYS if k not in record]
        assert not missing, missing
        assert sum(record["batch/domain_counts"].values()) == cfg.sampler.batch_size
        assert sum(record["labels"].values()) == cfg.sampler.batch_size * cfg.rollout.num_generations
        assert record["policy_version_lag"] == 0
        # sync: the actor generates (and loads the pushed weights) while the driver waits for it or scores its
        # chunks (streaming scoring)
        waits = record["time/rollout"] + record["time/reward"] + record.get("time/refill", 0.0)
        assert 0 < record["rollout/busy_s"] <= waits + 0.05
        assert record["rollout/tokens_per_second"] > 0
        assert 0 <= record["rollout/idle_ratio"] <= 1 and 0 <= record["learner/idle_ratio"] <= 1
    assert [r["batch/sample_ids"] for r in records] == _expected_batches(cfg.sampler, range(3))
    assert (out / "checkpoints" / "step-2" / "adapter_model.safetensors").exists()
    assert (out / "reward_debug.log").read_text().count("SUMMARY") == 3
    assert (out / "config.yaml").exists() and (out / "run.log").exists()
    lengths = (out / "prompt_lengths.txt").read_text().splitlines()
    assert lengths[0] == "# prompt lengths in tokens (limit: 256)" and len(lengths) == 2 + 2 * 5  # train + test


def test_async_steps_run_one_version_behind(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "async"
    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml", _overrides(data_root, out, mode="async", max_steps=4))
    assert run(cfg) == 0
    records = _records(out)
    assert [r["step"] for r in records] == [0, 1, 2, 3]
    assert records[0]["policy_version_lag"] == 0
    assert all(r["policy_version_lag"] == 1 for r in records[1:])
    # the push no longer waits behind the next step's generation: it is the transfer alone
    assert sum(r["time/weight_sync"] for r in records) < sum(r["rollout/busy_s"] for r in records)
    assert [r["batch/sample_ids"] for r in records] == _expected_batches(cfg.sampler, range(4))
    for r in records:  # sampler metrics describe the step's own batch, though step + 1 was served already
        assert r["sampler/step"] == r["step"]
        assert {d: r[f"sampler/domain/{d}"] for d in r["batch/domain_counts"]} == r["batch/domain_counts"]


def test_async_with_max_staleness_2_keeps_two_rollouts_in_flight_and_lag_within_2(data_root: Path, tmp_path: Path):
    out = tmp_path / "async2"
    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml",
                      _overrides(data_root, out, mode="async", max_steps=5, max_staleness=2))
    assert run(cfg) == 0
    records = _records(out)
    # step 0 on-policy; steps 1 and 2 were generated on v0 during step 0; step 3 on v1 during step 1, ...
    assert [r["policy_version_lag"] for r in records] == [0, 1, 2, 2, 2]
    assert [r["batch/sample_ids"] for r in records] == _expected_batches(cfg.sampler, range(5))


def test_filtered_groups_are_refilled_with_problems_of_their_domains(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "refill"
    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml", _overrides(
        data_root, out, max_steps=2, mode="async", filter_zero_std_groups="true", max_refill_rounds=2))
    assert run(cfg) == 0
    records = _records(out)
    g, size = cfg.rollout.num_generations, cfg.sampler.batch_size
    assert [r["batch/sample_ids"] for r in records] == _expected_batches(cfg.sampler, range(2))  # unchanged
    for record in records:
        first_round = round(record["frac_zero_std_groups"] * size)
        refilled = record["batch/refill_sample_ids"]
        assert record["refill/groups"] == len(refilled)
        assert (record["refill/rounds"] >= 1) == (first_round > 0)
        assert record["refill/groups"] >= first_round
        assert record["refill/rounds"] <= 2 and record["refill/groups"] <= 2 * first_round
        # every scored completion is counted once: the batch's groups and the refills'
        assert sum(record["labels"].values()) == (size + len(refilled)) * g
        assert record["groups_trained"] == size - first_round + record["refill/groups_with_signal"] <= size


def test_killed_rollout_actor_is_survived_without_double_counting(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "kill"
    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml",
                      _overrides(data_root, out, max_steps=6, **{"rollout.max_new_tokens": 48}))
    ray.init(num_cpus=4, include_dashboard=False)
    try:
        result: dict[str, object] = {}
        worker = threading.Thread(target=lambda: result.setdefault("rc", run(cfg)))
        worker.start()
        deadline = time.monotonic() + 240
        while not (out / "metrics.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (out / "metrics.jsonl").exists(), "the run never finished a step"
        ray.kill(ray.get_actor("rollout-0"), no_restart=False)
        worker.join(timeout=300)
        assert result.get("rc") == 0
    finally:
        ray.shutdown()
    records = _records(out)
    assert [r["step"] for r in records] == list(range(6))
    for record in records:
        assert sum(record["labels"].values()) == cfg.sampler.batch_size * cfg.rollout.num_generations


def test_killed_driver_resumes_the_same_stream(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "resume"
    args = _overrides(data_root, out, max_steps=8, save_steps=2, **{"rollout.max_new_tokens": 32})
    cmd = [sys.executable, "-m", "learner.main", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (out / "checkpoints" / "step-3").exists() and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        assert (out / "checkpoints" / "step-3").exists(), "no checkpoint at step 3"
    finally:
        proc.kill()
        proc.wait()
    done_before = len(_records(out))
    assert done_before < 8, "the driver finished before it was killed; nothing to resume"
    resumed = subprocess.run([*cmd, "resume_from_checkpoint=auto"], cwd=ROOT, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    records = _records(out)
    assert [r["step"] for r in records] == list(range(8))
    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml", args)
    assert [r["batch/sample_ids"] for r in records] == _expected_batches(cfg.sampler, range(8))
