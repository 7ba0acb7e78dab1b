"""The real pipeline (2 smoke steps, tiny model) under cluster.placement disaggregated and colocated.

The module starts its own local Ray that declares 2 fake GPUs (Ray hands out their ids and
CUDA_VISIBLE_DEVICES like real ones; torch sees no CUDA, so the HF engine and the learner run on CPU),
so the shared `cluster` fixture is not used. A spy around StepLoop.shutdown reads where the actors ran
before the run tears them down; everything else is the unmodified `learner.driver.pipeline.run`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from learner.config.run import load_config
from learner.driver.pipeline import run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sampler.datagen.builder import build_dataset

    root = tmp_path_factory.mktemp("data")
    build_dataset(root, per_domain=6, sizes="tiny", prompt_style="compact", test_fraction=0.0, seed=1)
    return root


@pytest.fixture(scope="module")
def ray_two_fake_gpus():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def seen(monkeypatch, ray_two_fake_gpus) -> dict:
    """Spy on StepLoop.shutdown: record placement info, engine histories and the groups, then shut down."""
    from ray.util.placement_group import placement_group_table

    import learner.driver.loop

    ray, found = ray_two_fake_gpus, {}
    original = learner.driver.loop.StepLoop.shutdown

    def spy(self) -> None:
        head = getattr(self.learner, "head", self.learner)  # rank 0 of a LearnerGroup, or the one actor
        found["learner"] = ray.get(head.placement_info.remote())
        found["rollout"] = self.rollout.placement_info()
        found["history"] = self.rollout.history()
        found["groups"] = {v["name"]: pg_id for pg_id, v in placement_group_table().items()
                           if v["state"] == "CREATED"}
        original(self)
        ray.kill(self.sampler.actor)  # the next run in this Ray names its sampler "sampler" again

    monkeypatch.setattr(learner.driver.loop.StepLoop, "shutdown", spy)
    # the order in which the learner becomes ready and the engines start
    events = found.setdefault("start_order", [])
    wait_ready, rollout_init = learner.driver.loop.LearnerGroup.wait_ready, learner.driver.loop.RolloutGroup.__init__

    def ready_spy(self, *args, **kwargs) -> None:
        wait_ready(self, *args, **kwargs)
        events.append("learner ready")

    def rollout_spy(self, *args, **kwargs) -> None:
        events.append("rollout start")
        rollout_init(self, *args, **kwargs)

    monkeypatch.setattr(learner.driver.loop.LearnerGroup, "wait_ready", ready_spy)
    monkeypatch.setattr(learner.driver.loop.RolloutGroup, "__init__", rollout_spy)
    return found


def _run(data_root: Path, out: Path, placement: str) -> list[dict]:
    overrides = {
        "output_dir": out, "sampler.data_root": data_root, "sft.enabled": "false", "logging.progress_bar": "false",
        "rollout.max_new_tokens": 12, "reward.num_workers": 1, "cluster.learner_num_cpus": 1,
        "rollout.num_cpus_per_actor": 1, "cluster.learner_num_gpus": 1, "rollout.num_gpus_per_actor": 1,
        "cluster.placement": placement, "cluster.placement_timeout_s": 60,
        "mode": "sync",  # the call order asserted below is the sync loop's; colocated needs sync anyway
        "tiny_model.layers": 2, "tiny_model.hidden": 64, "tiny_model.ffn": 128,
    }
    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml", [f"{k}={v}" for k, v in overrides.items()])
    assert run(cfg, smoke=True) == 0
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_disaggregated_learner_and_engine_run_in_their_groups_on_different_gpus(data_root, tmp_path, seen) -> None:
    records = _run(data_root, tmp_path / "dis", "disaggregated")
    assert [r["step"] for r in records] == [0, 1]
    learner, (engine,) = seen["learner"], seen["rollout"]
    assert learner["placement_group_id"] == seen["groups"]["pddl-grpo-learner"]
    assert engine["placement_group_id"] == seen["groups"]["pddl-grpo-rollout"]
    assert "pddl-grpo-reward" not in seen["groups"]  # reward workers ask for resources directly
    assert len(learner["gpu_ids"]) == 1 and len(engine["gpu_ids"]) == 1
    assert learner["gpu_ids"] != engine["gpu_ids"]
    assert all("time/sleep" not in r and "time/wake" not in r for r in records)
    # a push is staged on the actor's weights thread; the engine loads it before the generate that asks for it
    # (version 0 is the engine's own start: nothing to load)
    assert [call for call, _, _ in seen["history"][0]] == ["push", "generate", "push",
                                                           "load_weights", "generate", "push"]


def test_colocated_learner_and_engine_share_a_gpu_and_the_engine_sleeps_to_learn(data_root, tmp_path, seen) -> None:
    records = _run(data_root, tmp_path / "col", "colocated")
    assert [r["step"] for r in records] == [0, 1]
    learner, (engine,) = seen["learner"], seen["rollout"]
    group = seen["groups"]["pddl-grpo-colocated"]
    assert learner["placement_group_id"] == engine["placement_group_id"] == group
    assert len(learner["gpu_ids"]) == 1 and learner["gpu_ids"] == engine["gpu_ids"]
    # the engine starts after the learner has loaded (vLLM's start-up memory profile needs a still GPU)
    assert seen["start_order"] == ["learner ready", "rollout start"]
    history = seen["history"][0]
    # initial push, then per step: generate with v (loaded first from its push, v0 is the start), sleep,
    # (learner trains), wake, push v+1 (staged; the
    # engine loads it awake, before its next generate)
    assert [(call, version) for call, version, _ in history] == [
        ("push", 0),
        ("generate", 0), ("sleep", 0), ("wake_up", 0), ("push", 1),
        ("load_weights", 1), ("generate", 1), ("sleep", 1), ("wake_up", 1), ("push", 2),
    ]
    sleeps = [i for i, (call, _, _) in enumerate(history) if call == "sleep"]
    for step, record in enumerate(records):
        assert record["time/sleep"] >= 0 and record["time/wake"] >= 0
        slept_at, woke_at = history[sleeps[step]][2], history[sleeps[step] + 1][2]
        assert woke_at - slept_at >= record["time/learn"]  # the whole learn phase fell inside the sleep
