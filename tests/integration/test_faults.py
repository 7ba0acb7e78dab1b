"""Fault injection on a local Ray cluster (issue 19); docs/reliability.md lists the promises.

Waits with a deadline that says what is missing (these hung forever before issue 19: Ray keeps an actor it
cannot place pending, and the reward pool gave a chunk to a worker that never started); a resume past a
corrupt checkpoint and torn logs; a learner that meets a NaN loss stops with the step and the cause.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from reward_service.config import RewardConfig
from reward_service.contracts import Completion
from reward_service.result import Label

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pddl"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_two_cpus():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _batch(n: int) -> tuple[list[Completion], list[dict]]:
    plan = (FIXTURES / "ferry" / "p01.valid.plan").read_text()
    meta = {"problem_file": "ferry/p01.pddl", "domain_file": "ferry/domain.pddl"}
    return [Completion(f"s{i}", plan) for i in range(n)], [{"sample_id": f"s{i}", "meta": meta} for i in range(n)]


@pytest.mark.timeout(120)
def test_a_reward_resource_no_node_has_fails_with_its_name(ray_two_cpus) -> None:
    from actors.reward import RewardPool
    from actors.scheduling import ActorsNotPlacedError

    completions, samples = _batch(4)
    config = RewardConfig(num_workers=2, validator="native", worker_resource="reward_node")
    t0 = time.monotonic()
    with RewardPool(config, str(FIXTURES), name_prefix="nores", start_timeout_s=3.0) as pool:
        with pytest.raises(ActorsNotPlacedError, match=r"needs 1 'reward_node', the cluster has 0 in all.*"
                                                       r"reward.worker_resource: null"):
            pool.score(completions, samples)
        with pytest.raises(ActorsNotPlacedError, match="reward_node"):
            pool.wait_ready(timeout_s=1.0)
    assert time.monotonic() - t0 < 60


@pytest.mark.timeout(180)
def test_more_reward_workers_than_cpus_score_everything_with_those_that_start(ray_two_cpus) -> None:
    from actors.reward import RewardPool

    completions, samples = _batch(12)
    config = RewardConfig(num_workers=3, cpus_per_worker=1, validator="native")  # 2 CPUs: one never starts
    with RewardPool(config, str(FIXTURES), name_prefix="toomany", start_timeout_s=3.0) as pool:
        scores = pool.score(completions, samples)
        by_worker = pool.stats().plans_by_worker
    assert [s.sample_id for s in scores] == [c.sample_id for c in completions]
    assert {s.label for s in scores} == {Label.SUCCESS}
    assert sum(by_worker.values()) == 12 and len(by_worker) == 2  # each scored exactly once, by the two placed


@pytest.mark.timeout(120)
def test_an_actor_asking_for_more_cpus_than_the_cluster_has_is_named(ray_two_cpus) -> None:
    ray = ray_two_cpus
    from actors.scheduling import ActorsNotPlacedError, wait_placed

    @ray.remote
    class Big:
        def ping(self) -> bool:
            return True

    big = Big.options(name="big-learner", num_cpus=3).remote()
    try:
        with pytest.raises(ActorsNotPlacedError, match=r"big-learner still wait.*the run needs 3 CPUs\..*'CPU': 2"):
            wait_placed(2.0, lambda: ["the run needs 3 CPUs"], poll_s=0.2)
    finally:
        ray.kill(big)
    wait_placed(10.0, poll_s=0.2)  # nothing pending any more: returns at once


# -- resume that always works (item 4) ------------------------------------------------------------------------


def _train(data_root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [f"output_dir={out}", f"sampler.data_root={data_root}", "max_steps=4", "save_steps=2",
            "rollout.num_generations=2", "rollout.max_new_tokens=24", "sft.steps=2", "sft.minutes=null",
            "eval.before_after=false", "logging.progress_bar=false", "reward.num_workers=1", "cluster.num_cpus=4",
            "cluster.learner_num_cpus=1", "rollout.num_cpus_per_actor=1", *extra]
    return subprocess.run([sys.executable, "-m", "learner.main", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def _summary_steps(run_dir: Path) -> list[int]:
    return [int(line.split("\t", 1)[0].removeprefix("step=")) for line in
            (run_dir / "reward_debug.log").read_text().splitlines() if "\tSUMMARY\t" in line]


@pytest.mark.timeout(900)
def test_resume_falls_back_past_a_corrupt_checkpoint_and_torn_logs_without_duplicates(tmp_path: Path) -> None:
    from learner.driver.step_metrics import read_metrics
    from sampler.datagen.builder import build_dataset

    data_root = tmp_path / "data"
    build_dataset(data_root, per_domain=12, sizes="tiny", prompt_style="compact", test_fraction=0.2, seed=1)
    out = tmp_path / "run"
    first = _train(data_root, out)
    assert first.returncode == 0, first.stderr[-2000:]
    batches = {r["step"]: r["batch/sample_ids"] for r in read_metrics(out)}
    assert sorted(batches) == [0, 1, 2, 3] and (out / "checkpoints" / "step-3").is_dir()
    # a crash: the newest checkpoint's adapter is garbage, both logs end in a line cut mid-write
    (out / "checkpoints" / "step-3" / "adapter_model.safetensors").write_bytes(b"\x00" * 64)
    with (out / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 4, "reward/me')
    with (out / "reward_debug.log").open("a") as fh:
        fh.write("step=4\tsample_id=ferry:1\tdom")
    resumed = _train(data_root, out, "resume_from_checkpoint=auto")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    run_log = (out / "run.log").read_text()
    ckpts = out / "checkpoints"
    fallback = f"checkpoint {ckpts / 'step-3'} does not load; falling back to the previous one, {ckpts / 'step-1'}"
    assert fallback in run_log
    assert f"resumed from {ckpts / 'step-1'} at step 2" in run_log
    records = read_metrics(out)
    assert [r["step"] for r in records] == [0, 1, 2, 3]  # steps 2 and 3 once each, the torn line gone
    assert {r["step"]: r["batch/sample_ids"] for r in records} == batches  # the same stream from step-1's state
    assert _summary_steps(out) == [0, 1, 2, 3]
    assert all(line.startswith("step=") for line in (out / "reward_debug.log").read_text().splitlines())


# -- a run that cannot learn stops (item 6) -------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_a_poisoned_batch_in_the_learner_actor_stops_with_the_step_and_the_cause(ray_two_cpus, tmp_path) -> None:
    import math

    from actors.learner import create_learner_actor
    from learner.config.learner import LearnerConfig
    from learner.grpo.train_step import NonFiniteTrainingError, TrainSample
    from tests.conftest import build_tiny_llama

    ray = ray_two_cpus
    cfg = LearnerConfig(base_model=str(build_tiny_llama(tmp_path / "tiny")), lora_rank=4, beta=0.0,
                        use_gradient_checkpointing=False)
    learner = create_learner_actor(cfg, num_cpus=1, name="nan-learner")
    try:
        batch = [TrainSample((2, 3, 4), (5, 6, 7, 1), math.nan), TrainSample((2, 3), (8, 9, 1), -1.0)]
        with pytest.raises(NonFiniteTrainingError) as info:  # the driver's `except` sees it through Ray
            ray.get(learner.train_step.remote(batch))
        assert info.value.reason == "optimizer step 0: the loss is nan (not finite); no update was applied"
        assert ray.get(learner.version.remote()) == 0
    finally:
        ray.kill(learner)
