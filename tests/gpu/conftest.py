"""Fixtures of the GPU smoke tests (marker `gpu`; tests/conftest.py skips them without CUDA).

`bash scripts/gpu_smoke.sh` runs them with GPU_SMOKE_REQUIRED=1: a missing vllm or unsloth then fails the
test instead of skipping it, and every measured number goes to $GPU_SMOKE_OUT/measurements.txt as well.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [
    "Goal: on a b\nPlan:\n(unstack a b)\n(putdown a)\n(pick-up b)\n(stack b c)",
    "Goal: at ball1 room2\nPlan:\n(pick ball1 room1 left)\n(move room1 room2)\n(drop ball1 room2 left)",
    "Goal: at car1 loc2\nPlan:\n(board car1 loc1)\n(sail loc1 loc2)\n(debark car1 loc2)",
]
PROMPTS = ["Goal: on a b\nPlan:\n", "Goal: at ball1 room2\nPlan:\n", "Goal: at car1 loc2\nPlan:\n"]
LORA = {"lora_rank": 8, "lora_alpha": 16.0}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


@pytest.fixture(scope="session")
def need():
    """need(module): the module imported; a skip without it, or a failure under GPU_SMOKE_REQUIRED=1."""
    return _need


def _need(module: str):
    """Import `module`; skip without it, or fail when the smoke script asks for every test to run."""
    if importlib.util.find_spec(module) is None:
        reason = f"{module} is not installed (pip install -e '.[gpu]'; scripts/check_gpu_extra.sh)"
        if os.environ.get("GPU_SMOKE_REQUIRED") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return importlib.import_module(module)


@pytest.fixture(scope="session")
def smoke_checks():
    """scripts/gpu_smoke_checks.py, the assertion helpers the CPU suite tests too."""
    spec = importlib.util.spec_from_file_location("gpu_smoke_checks", ROOT / "scripts" / "gpu_smoke_checks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_smoke_checks"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def record():
    """record(name, value): print `name value` and append it to $GPU_SMOKE_OUT/measurements.txt."""
    out = os.environ.get("GPU_SMOKE_OUT")

    def _record(name: str, value: float) -> None:
        line = f"{name} {value:.6g}"
        print(line, flush=True)
        if out:
            with open(Path(out) / "measurements.txt", "a") as fh:
                fh.write(line + "\n")

    return _record


@pytest.fixture(scope="session")
def gpu_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama of learner.policy.tiny (2 layers, hidden 128, head size 64: every CUDA attention backend
    has it)."""
    from learner.policy.tiny import build_tiny_model, build_tiny_tokenizer

    tok = build_tiny_tokenizer(TEXTS)
    return build_tiny_model(tok, tmp_path_factory.mktemp("tiny_gpu"), layers=2, hidden=128, ffn=256, heads=2, seed=0)


@pytest.fixture(scope="session")
def prompts() -> list[str]:
    return list(PROMPTS)


@pytest.fixture(scope="session")
def make_learner_config():
    """make_learner_config(model_dir, **fields): a LearnerConfig of the engines' LoRA shape (bf16 on a GPU)."""
    return _learner_config


@pytest.fixture(scope="session")
def make_random_adapter():
    """make_random_adapter(model, seed): LoRA tensors of the model's keys with non-zero B."""
    return _random_adapter


def _learner_config(model_dir: Path, **kw):
    from learner.config.learner import LearnerConfig

    fields = {"base_model": str(model_dir), **LORA, "lora_target_modules": TARGETS, "load_in_4bit": False,
              "use_unsloth": False, "use_gradient_checkpointing": False, "beta": 0.0, "max_seq_length": 256}
    fields.update(kw)
    return LearnerConfig(**fields)


def _random_adapter(model, seed: int, scale: float = 0.3) -> dict:
    """A LoRA state of the learner's keys and shapes with non-zero B, so the adapter changes the outputs."""
    import torch

    from learner.policy.model import get_adapter_state

    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) * scale for k, v in get_adapter_state(model).items()}
