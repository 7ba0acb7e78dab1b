"""Adapter-version bookkeeping of the vLLM engine: one versioned PEFT directory and LoRA id per policy version.

    registry = LoraRegistry(root)
    entry = registry.register(state, version, rank=16, alpha=32.0)  # writes root/policy-v{version}/
    llm.llm_engine.add_lora(LoRARequest(**entry.request_args()))
    for old in registry.to_remove:                                   # every older version still loaded
        llm.llm_engine.remove_lora(old.lora_int_id)
        registry.release(old)                                        # forgets it and deletes its directory

vLLM caches adapters by integer id, so a new version needs a new id (version + 1: ids must be > 0)
and a new name; the previous one is removed so adapters never pile up in GPU or CPU memory.
Pure Python + safetensors: no vLLM, no GPU, fully tested on CPU.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
# vLLM accepts only these max_lora_rank values (its MaxLoRARanks); a rank in between is rounded up.
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?:A|B)(?:\.[^.]+)?\.weight$")


@dataclass(frozen=True)
class AdapterVersion:
    """One registered adapter: what `LoRARequest(name, id, path)` needs, and its policy version."""

    version: int
    lora_name: str
    lora_int_id: int
    path: Path

    def request_args(self) -> dict[str, object]:
        """Keyword arguments of `vllm.lora.request.LoRARequest`."""
        return {"lora_name": self.lora_name, "lora_int_id": self.lora_int_id, "lora_path": str(self.path)}


def vllm_max_lora_rank(rank: int) -> int:
    """The smallest `max_lora_rank` vLLM accepts that holds an adapter of `rank`."""
    for allowed in VLLM_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise ValueError(f"lora_rank {rank} is above vLLM's largest max_lora_rank ({VLLM_LORA_RANKS[-1]})")


def lora_target_modules(state: Mapping[str, torch.Tensor]) -> list[str]:
    """Leaf module names that carry LoRA tensors (`...q_proj.lora_A.weight` -> q_proj), sorted.

    Written into adapter_config.json instead of the learner's 'all-linear', which vLLM does not expand.
    """
    leaves = set()
    for key in state:
        match = _LORA_KEY.match(key)
        if match is None:
            raise ValueError(f"adapter tensor {key!r} is not a LoRA A/B weight (expected '<module>.lora_A.weight')")
        leaves.add(match["module"].rsplit(".", 1)[-1])
    return sorted(leaves)


def write_adapter(
    directory: str | Path, state: Mapping[str, torch.Tensor], *, rank: int, alpha: float, base_model: str | None = None
) -> Path:
    """Save `state` (PEFT's `get_peft_model_state_dict` keys) as a PEFT adapter directory vLLM can load."""
    from safetensors.torch import save_file

    if not state:
        raise ValueError("write_adapter got an empty adapter state; the learner sent no LoRA tensors")
    ranks = {int(v.shape[0]) for k, v in state.items() if ".lora_A" in k}
    if ranks != {rank}:
        # e.g. an SFT adapter of rank 64 trained on with learner.lora_rank 16: vLLM would misread it
        raise ValueError(f"adapter tensors have LoRA rank {sorted(ranks)}, but rank {rank} was declared; "
                         "set learner.lora_rank to the adapter's rank")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # safetensors refuses views and shared storage; a contiguous CPU copy of each tensor is always safe.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    save_file(tensors, str(directory / ADAPTER_WEIGHTS))
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,  # inference only
        "target_modules": lora_target_modules(state),
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
        "base_model_name_or_path": base_model,
    }
    (directory / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2))
    return directory


class LoraRegistry:
    """Versioned adapter directories under `root` and the LoRA ids the engine holds.

    `register` makes a version current; every older version it still holds is listed in `to_remove`
    until `release` deletes its directory. Versions only move forward; registering the current
    version again is refused (vLLM would keep serving the cached weights of that id).
    """

    def __init__(self, root: str | Path | None = None, name_prefix: str = "policy") -> None:
        self._owns_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="pddl-grpo-lora-")) if root is None else Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.name_prefix = name_prefix
        self._held: dict[int, AdapterVersion] = {}  # version -> entry, current included
        self._current: AdapterVersion | None = None

    @property
    def current(self) -> AdapterVersion | None:
        """The newest registered adapter, or None before the first `register`."""
        return self._current

    @property
    def to_remove(self) -> list[AdapterVersion]:
        """Registered adapters older than the current one, oldest first: remove them from the engine."""
        cur = self._current
        return [e for v, e in sorted(self._held.items()) if cur is None or v != cur.version]

    @property
    def held(self) -> list[AdapterVersion]:
        """Every adapter not yet released, oldest first."""
        return [e for _, e in sorted(self._held.items())]

    def path_for(self, version: int) -> Path:
        return self.root / f"{self.name_prefix}-v{version}"

    def register(
        self, state: Mapping[str, torch.Tensor], version: int, *, rank: int, alpha: float, base_model: str | None = None
    ) -> AdapterVersion:
        """Write version `version` to its directory and make it current; returns its LoRARequest fields."""
        if version < 0:
            raise ValueError(f"policy version must be >= 0, got {version}")
        if self._current is not None and version <= self._current.version:
            raise ValueError(
                f"adapter version {version} is not newer than the registered version {self._current.version}"
            )
        path = write_adapter(self.path_for(version), state, rank=rank, alpha=alpha, base_model=base_model)
        # ids must be > 0 in vLLM, and unique per version so its adapter cache never serves stale weights
        entry = AdapterVersion(version, f"{self.name_prefix}-v{version}", version + 1, path)
        self._held[version] = entry
        self._current = entry
        return entry

    def release(self, entry: AdapterVersion) -> None:
        """Forget an adapter the engine no longer holds and delete its directory; the current one stays."""
        if self._current is not None and entry.version == self._current.version:
            raise ValueError(f"cannot release the current adapter (version {entry.version})")
        if self._held.pop(entry.version, None) is None:
            raise KeyError(f"adapter version {entry.version} is not registered")
        shutil.rmtree(entry.path, ignore_errors=True)

    def close(self) -> None:
        """Delete every adapter directory (and the root when the registry created it)."""
        for entry in self._held.values():
            shutil.rmtree(entry.path, ignore_errors=True)
        self._held.clear()
        self._current = None
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)
