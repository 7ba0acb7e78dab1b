"""Checkpoints of the learner: `<run_dir>/checkpoints/step-N/`, written atomically, the newest N kept.

    step-N/
      adapter_model.safetensors, adapter_config.json   the LoRA adapter (PEFT save_pretrained)
      optimizer.pt, scheduler.pt                       torch state dicts
      rng.pt                                           python, numpy, torch (and CUDA) RNG states
      extra.pt                                         the caller's extra state (e.g. the sampler's state_dict), exact
      state.json                                       step, version, extra keys, time (human-readable)

A checkpoint is written into a hidden temporary directory and renamed into place, so a crash
never leaves a half-written `step-N` that `latest_checkpoint` would pick.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

_STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass(frozen=True)
class LoadedCheckpoint:
    """What `load_checkpoint` restored: where from, the step, the adapter version and the extra state."""

    path: Path
    step: int
    version: int
    extra: dict[str, Any] = field(default_factory=dict)


def checkpoints_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under the run directory as (step, path), oldest first."""
    root = checkpoints_dir(run_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        m = _STEP_DIR.match(child.name)
        if m and (child / "state.json").is_file():
            found.append((int(m.group(1)), child))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of the run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    extra: dict[str, Any] | None = None,
    version: int | None = None,
    save_total_limit: int | None = None,
) -> Path:
    """Write `checkpoints/step-{step}` (replacing one of that step) and prune to the newest `save_total_limit`."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if save_total_limit is not None and save_total_limit < 1:
        raise ValueError(f"save_total_limit must be at least 1, got {save_total_limit}")
    root = checkpoints_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    tmp = root / f".tmp-step-{step}-{time.time_ns()}"
    tmp.mkdir()
    try:
        model.save_pretrained(str(tmp))  # a PeftModel saves the adapter only
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        if scheduler is not None:
            torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(_rng_state(), tmp / "rng.pt")
        torch.save(dict(extra or {}), tmp / "extra.pt")
        state = {"step": step, "version": step if version is None else version,
                 "extra_keys": sorted(extra or {}), "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n")
        if final.exists():
            old = root / f".old-step-{step}-{time.time_ns()}"
            final.rename(old)
            shutil.rmtree(old)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if save_total_limit is not None:
        for _, path in list_checkpoints(run_dir)[:-save_total_limit]:
            if path != final:
                shutil.rmtree(path)
    return final


def _torch_load(path: Path) -> Any:
    # our own files hold numpy RNG state and arbitrary extra state, which weights_only refuses
    return torch.load(path, map_location="cpu", weights_only=False)


def load_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    run_dir: str | Path | None = None,
    restore_rng: bool = True,
) -> LoadedCheckpoint | None:
    """Restore a checkpoint into model/optimizer/scheduler (and the RNGs); `path="auto"` takes the newest in run_dir.

    Returns None only for "auto" when the run has no checkpoint yet.
    """
    if str(path) == "auto":
        if run_dir is None:
            raise ValueError("load_checkpoint('auto') needs run_dir")
        found = latest_checkpoint(run_dir)
        if found is None:
            return None
        path = found
    ckpt = Path(path)
    state_file = ckpt / "state.json"
    if not state_file.is_file():
        raise FileNotFoundError(f"{ckpt}: not a checkpoint (no state.json)")
    state = json.loads(state_file.read_text())

    from peft.utils import load_peft_weights  # lazy: only checkpoint loading needs it

    from learner.model import set_adapter_state

    set_adapter_state(model, load_peft_weights(str(ckpt), device="cpu"))
    if optimizer is not None:
        optimizer.load_state_dict(_torch_load(ckpt / "optimizer.pt"))
    if scheduler is not None:
        scheduler.load_state_dict(_torch_load(ckpt / "scheduler.pt"))
    if restore_rng and (ckpt / "rng.pt").is_file():
        _set_rng_state(_torch_load(ckpt / "rng.pt"))
    extra = _torch_load(ckpt / "extra.pt") if (ckpt / "extra.pt").is_file() else {}
    return LoadedCheckpoint(path=ckpt, step=int(state["step"]), version=int(state["version"]), extra=extra)
