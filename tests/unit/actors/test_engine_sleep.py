"""Engine sleep/wake for colocated mode: HFEngine on CPU, VLLMEngine around a stand-in vllm.LLM (no GPU here)."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from actors.engines.base import EngineAsleep
from actors.engines.config import RolloutConfig
from actors.engines.hf import HFEngine
from learner.policy.tiny import build_tiny_model, build_tiny_tokenizer
from reward_service.contracts import LoraSpec

TEXTS = ["Goal: on a b\nPlan:\n", "(unstack a b)\n(putdown a)"]
LORA = {"lora": LoraSpec(rank=4, alpha=8.0, target_modules=("q_proj", "v_proj"))}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    tok = build_tiny_tokenizer(TEXTS)
    return build_tiny_model(tok, tmp_path_factory.mktemp("tiny"), layers=1, hidden=32, ffn=64, seed=1)


def test_hf_engine_on_cpu_sleeps_refuses_work_and_wakes_with_its_weights(model_path) -> None:
    cfg = RolloutConfig(max_new_tokens=4, num_generations=2, temperature=0.0)
    engine = HFEngine(model_path, cfg, device="cpu", **LORA)
    before = {k: v.clone() for k, v in engine.model.state_dict().items()}
    greedy = [c.token_ids for c in engine.generate(["Goal: on a b\nPlan:\n"], ["bw:0"])]
    engine.sleep()
    engine.sleep()  # idempotent: a second sleep changes nothing
    assert engine.sleeping
    with pytest.raises(EngineAsleep, match=r"asleep \(colocated mode\): call wake_up\(\) before generate\(\)"):
        engine.generate(["Goal: on a b\nPlan:\n"], ["bw:0"])
    with pytest.raises(EngineAsleep, match=r"before update_weights\(\)"):
        engine.update_weights({}, 1)
    engine.wake_up()
    engine.wake_up()
    assert not engine.sleeping and engine.version == 0
    after = engine.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.device.type == "cpu" for p in engine.model.parameters())
    assert [c.token_ids for c in engine.generate(["Goal: on a b\nPlan:\n"], ["bw:0"])] == greedy


class StandInSleepLLM:
    """Stand-in for vllm.LLM (no GPU here): records the constructor kwargs and the sleep/wake calls."""

    instances: list[StandInSleepLLM] = []

    def __init__(self, **kwargs) -> None:
        self.kwargs, self.calls = kwargs, []
        StandInSleepLLM.instances.append(self)

    def get_tokenizer(self):
        return build_tiny_tokenizer(TEXTS)

    def sleep(self, level: int = 1) -> None:
        self.calls.append(("sleep", level))

    def wake_up(self) -> None:
        self.calls.append(("wake_up",))

    def reset_prefix_cache(self) -> bool:
        self.calls.append(("reset_prefix_cache",))
        return True

    def generate(self, *args, **kwargs):
        raise AssertionError("a sleeping engine must not reach vLLM's generate")


@pytest.fixture
def stand_in_vllm_for_missing_gpu(monkeypatch):
    StandInSleepLLM.instances = []
    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = StandInSleepLLM, object
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = types.SimpleNamespace(is_cpu=lambda: False)  # sleep mode is a GPU feature
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.platforms", platforms)
    return StandInSleepLLM


def test_vllm_engine_reads_its_options_from_the_config_stand_in_llm(stand_in_vllm_for_missing_gpu, tmp_path) -> None:
    from actors.engines.vllm import VLLMEngine

    cfg = RolloutConfig(engine="vllm", gpu_memory_utilization=0.4, max_model_len=2304,
                        enable_prefix_caching=False, enable_sleep_mode=True)
    VLLMEngine("/models/base", cfg, lora=LoraSpec(rank=16), adapter_root=tmp_path)
    kwargs = stand_in_vllm_for_missing_gpu.instances[0].kwargs
    assert (kwargs["gpu_memory_utilization"], kwargs["max_model_len"]) == (0.4, 2304)
    assert kwargs["enable_prefix_caching"] is False and kwargs["enable_sleep_mode"] is True
    VLLMEngine("/models/base", cfg, lora=LoraSpec(rank=16), adapter_root=tmp_path, gpu_memory_utilization=0.3)
    assert stand_in_vllm_for_missing_gpu.instances[1].kwargs["gpu_memory_utilization"] == 0.3  # explicit wins


def test_vllm_engine_sleeps_at_level_one_and_wakes_once_stand_in_llm(stand_in_vllm_for_missing_gpu,
                                                                     tmp_path) -> None:
    from actors.engines.vllm import VLLMEngine

    engine = VLLMEngine("/models/base", RolloutConfig(engine="vllm", enable_sleep_mode=True), adapter_root=tmp_path)
    llm = stand_in_vllm_for_missing_gpu.instances[0]
    engine.sleep()
    engine.sleep()
    with pytest.raises(EngineAsleep, match="before generate"):
        engine.generate(["x"], ["bw:0"])
    engine.wake_up()
    engine.wake_up()
    assert llm.calls == [("sleep", 1), ("wake_up",), ("reset_prefix_cache",)] and not engine.sleeping

    plain = VLLMEngine("/models/base", RolloutConfig(engine="vllm"), adapter_root=tmp_path / "b")
    with pytest.raises(RuntimeError, match="set rollout.enable_sleep_mode: true"):
        plain.sleep()
