"""The Unsloth learner path without a GPU: a stand-in `unsloth` package records what the project calls.

Checked against unsloth 2026.10.9's source: FastLanguageModel.from_pretrained on an adapter directory
runs PeftModel.from_pretrained(is_trainable=True) then patch_peft_model (loader.py), and importing
unsloth after trl / transformers / peft warns that its patches may not apply (_gpu_init.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import learner.policy.model as model_module
from learner.config.learner import LearnerConfig

ROOT = Path(__file__).resolve().parents[3]

# the stand-in: records the libraries imported before it, and every FastLanguageModel call
_FAKE_UNSLOTH = '''
import json, os, sys
EARLY = [m for m in ("trl", "transformers", "peft") if m in sys.modules]
CALLS = []
if os.environ.get("FAKE_UNSLOTH_RECORD"):
    with open(os.environ["FAKE_UNSLOTH_RECORD"], "w") as fh:
        json.dump(EARLY, fh)
    raise SystemExit(17)  # stop the learner right after its first import of unsloth

class FastLanguageModel:
    @staticmethod
    def from_pretrained(**kwargs):
        CALLS.append(("from_pretrained", kwargs))
        return "base-model", "tokenizer"

    @staticmethod
    def get_peft_model(model, **kwargs):
        CALLS.append(("get_peft_model", model, kwargs))
        return "fresh-lora"

    @staticmethod
    def patch_peft_model(model, use_gradient_checkpointing="unsloth"):
        CALLS.append(("patch_peft_model", model, use_gradient_checkpointing))
        return "patched-" + model
'''


@pytest.fixture
def fake_unsloth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pkg = tmp_path / "fake" / "unsloth"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(_FAKE_UNSLOTH)
    monkeypatch.syspath_prepend(str(tmp_path / "fake"))
    monkeypatch.delitem(sys.modules, "unsloth", raising=False)
    import unsloth

    yield unsloth
    sys.modules.pop("unsloth", None)


def test_an_adapter_loads_through_unsloths_peft_patch(fake_unsloth, monkeypatch: pytest.MonkeyPatch) -> None:
    peft_calls = []

    def from_pretrained(model, path, is_trainable=False):
        peft_calls.append((model, path, is_trainable))
        return "peft-model"

    monkeypatch.setattr(model_module.PeftModel, "from_pretrained", staticmethod(from_pretrained))
    cfg = LearnerConfig(base_model="org/base", adapter_path="/sft/adapter", load_in_4bit=True)
    model, tok = model_module._load_with_unsloth(cfg, dtype=None)
    assert peft_calls == [("base-model", "/sft/adapter", True)]
    assert fake_unsloth.CALLS[0][0] == "from_pretrained" and fake_unsloth.CALLS[0][1]["model_name"] == "org/base"
    assert fake_unsloth.CALLS[1:] == [("patch_peft_model", "peft-model", "unsloth")]  # kernels + checkpointing
    assert (model, tok) == ("patched-peft-model", "tokenizer")


def test_a_fresh_adapter_uses_unsloths_get_peft_model(fake_unsloth) -> None:
    cfg = LearnerConfig(base_model="org/base", use_gradient_checkpointing=False, lora_rank=8)
    model, _ = model_module._load_with_unsloth(cfg, dtype=None)
    (_, base, kwargs) = fake_unsloth.CALLS[1]
    assert model == "fresh-lora" and base == "base-model"
    assert kwargs["r"] == 8 and kwargs["use_gradient_checkpointing"] is False
    assert "q_proj" in kwargs["target_modules"]  # Unsloth does not take "all-linear"


_ACTOR_START = textwrap.dedent("""
    import sys
    import torch
    torch.cuda.is_available = lambda: True  # the GPU learner's path; the stand-in stops it at its import
    from actors.learner import LearnerActor
    from learner.config.learner import LearnerConfig
    cls = LearnerActor.__ray_metadata__.modified_class
    cls.__init__(object.__new__(cls), LearnerConfig(base_model="org/base"))
""")


@pytest.mark.slow
def test_the_learner_actor_imports_unsloth_before_transformers_and_peft(tmp_path: Path) -> None:
    pkg = tmp_path / "unsloth"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(_FAKE_UNSLOTH)
    record = tmp_path / "early.json"
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "FAKE_UNSLOTH_RECORD": str(record), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", _ACTOR_START], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 17, run.stderr[-2000:]
    assert json.loads(record.read_text()) == []  # nothing Unsloth patches was imported before it
