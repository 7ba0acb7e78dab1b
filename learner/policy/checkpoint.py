"""Checkpoints of the learner: `<run_dir>/checkpoints/step-N/`, written atomically, the newest N kept.

    step-N/
      adapter_model.safetensors, adapter_config.json   the LoRA adapter (PEFT save_pretrained)
      optimizer.pt, scheduler.pt                       torch state dicts
      rng.pt                                           python, numpy, torch (and CUDA) RNG states
      extra.pt                                         the caller's extra state (e.g. the sampler's state_dict), exact
      state.json                                       step, version, extra keys, time (human-readable)

A checkpoint is written into a hidden temporary directory, every file and the directory fsynced, then
renamed into place (and the parent fsynced), so neither a crash nor a power loss leaves a half-written
`step-N` that `latest_checkpoint` would pick; the temporary directories of a crashed save are removed by
the next one. Files are read with `torch.load(weights_only=True)` and hold plain types only (a crafted
checkpoint cannot run code); `load_checkpoint("auto")` falls back to the previous checkpoint, with a
warning, when the newest does not load. A full disk is an OSError naming the directory and the bytes.
"""

from __future__ import annotations

import collections
import errno
import json
import logging
import os
import pickle
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
_LEFTOVER = re.compile(r"^\.(tmp|old)-step-\d+-\d+$")  # a save that crashed before its rename or cleanup
log = logging.getLogger(__name__)


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
    kind, keys, pos, has_gauss, gauss = np.random.get_state()  # plain types: weights_only loads them
    numpy_state = (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss))
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
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
    _remove_leftovers(root)
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
        torch.save(plain(dict(extra or {}), "extra"), tmp / "extra.pt")
        state = {"step": step, "version": step if version is None else version,
                 "extra_keys": sorted(extra or {}), "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n")
        _fsync_tree(tmp)  # the data is on disk before the rename makes it the checkpoint
        if final.exists():
            old = root / f".old-step-{step}-{time.time_ns()}"
            final.rename(old)
            shutil.rmtree(old)
        tmp.rename(final)
        _fsync_dir(root)
    except OSError as exc:
        written = _tree_bytes(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_full(exc, final, written) from exc
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if save_total_limit is not None:
        for _, path in list_checkpoints(run_dir)[:-save_total_limit]:
            if path != final:
                shutil.rmtree(path)
    return final


def _torch_load(path: Path) -> Any:
    """torch.load with weights_only=True: tensors and plain types only, so a crafted file cannot run code.

    NumPy arrays are allowed too (the RNG state of checkpoints written before issue 19).
    """
    core = getattr(np, "_core", None) or np.core  # numpy 2 / numpy 1
    allowed = [np.ndarray, np.dtype, type(np.dtype(np.uint32)), core.multiarray._reconstruct]
    with torch.serialization.safe_globals(allowed):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise pickle.UnpicklingError(f"{path}: holds types that weights_only loading refuses (a crafted or "
                                         f"foreign file?): {str(exc).splitlines()[-1][:300]}") from None


def load_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    run_dir: str | Path | None = None,
    restore_rng: bool = True,
) -> LoadedCheckpoint | None:
    """Restore a checkpoint into model/optimizer/scheduler (and the RNGs); `path="auto"` takes the newest in run_dir
    that loads, warning about each newer one that does not (a torn file, a disk error), and falling back to it.

    Returns None only for "auto" when the run has no checkpoint yet.
    """
    if str(path) != "auto":
        return _load_one(Path(path), model, optimizer, scheduler, restore_rng)
    if run_dir is None:
        raise ValueError("load_checkpoint('auto') needs run_dir")
    found = [p for _, p in reversed(list_checkpoints(run_dir))]
    failures = []
    for ckpt in found:
        try:
            return _load_one(ckpt, model, optimizer, scheduler, restore_rng)
        except Exception as exc:  # any unreadable file: every part is loaded again from the previous checkpoint
            failures.append(f"{ckpt.name}: {type(exc).__name__}: {exc}")
            log.warning("checkpoint %s does not load (%s: %s); falling back to the previous one",
                        ckpt, type(exc).__name__, exc)
    if failures:
        raise RuntimeError(f"no checkpoint under {checkpoints_dir(run_dir)} loads: " + "; ".join(failures))
    return None


def _load_one(ckpt: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, scheduler: Any | None,
              restore_rng: bool) -> LoadedCheckpoint:
    state_file = ckpt / "state.json"
    if not state_file.is_file():
        raise FileNotFoundError(f"{ckpt}: not a checkpoint (no state.json)")
    state = json.loads(state_file.read_text())
    # Read every file before changing anything, so a checkpoint that fails leaves the model as it was.
    from peft.utils import load_peft_weights  # lazy: only checkpoint loading needs it

    from learner.policy.model import set_adapter_state

    adapter = load_peft_weights(str(ckpt), device="cpu")
    optimizer_state = _torch_load(ckpt / "optimizer.pt") if optimizer is not None else None
    scheduler_state = _torch_load(ckpt / "scheduler.pt") if scheduler is not None else None
    rng = _torch_load(ckpt / "rng.pt") if restore_rng and (ckpt / "rng.pt").is_file() else None
    extra = _torch_load(ckpt / "extra.pt") if (ckpt / "extra.pt").is_file() else {}
    set_adapter_state(model, adapter)
    if optimizer is not None:
        optimizer.load_state_dict(optimizer_state)
    if scheduler is not None:
        scheduler.load_state_dict(scheduler_state)
    if rng is not None:
        _set_rng_state(rng)
    return LoadedCheckpoint(path=ckpt, step=int(state["step"]), version=int(state["version"]), extra=extra)


def plain(value: Any, where: str = "extra") -> Any:
    """`value` as the plain types weights_only loading accepts (NumPy scalars become Python numbers, deques
    lists); anything else is a TypeError naming where it is, at save time rather than at load time."""
    if isinstance(value, np.generic):  # before float: np.float64 is a float subclass that pickles as numpy
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str, bytes, torch.Tensor)):
        return value
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value
    if isinstance(value, dict):
        return {plain(k, f"{where} key"): plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, (list, collections.deque)):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return type(value)(plain(v, f"{where} item") for v in value)
    raise TypeError(f"checkpoint {where} is a {type(value).__module__}.{type(value).__qualname__}: a checkpoint "
                    "holds plain types only (dict, list, tuple, set, str, int, float, bool, None, tensors, arrays)")


def _remove_leftovers(root: Path) -> None:
    """Delete the `.tmp-step-*` / `.old-step-*` directories a crashed save left behind."""
    for child in root.iterdir():
        if _LEFTOVER.match(child.name) and child.is_dir():
            log.warning("removing %s, left by a save that did not finish", child)
            shutil.rmtree(child, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """fsync every file under `root`, then the directories (deepest first), then `root`."""
    dirs = []
    for here, _, files in os.walk(root):
        dirs.append(Path(here))
        for name in files:
            fd = os.open(Path(here) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for directory in reversed(dirs):
        _fsync_dir(directory)


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0


def _disk_full(exc: OSError, final: Path, written: int) -> OSError:
    """The ENOSPC of a save, with the directory, the bytes it needs and the bytes free."""
    previous = [p for _, p in list_checkpoints(final.parent.parent) if p != final]
    needed = max(written, _tree_bytes(previous[-1]) if previous else 0)
    free = shutil.disk_usage(final.parent).free
    return OSError(exc.errno, f"no space left on the device of {final.parent} to write {final.name}: a checkpoint "
                              f"needs about {needed:,} bytes ({written:,} written when it failed), {free:,} bytes "
                              "are free; free space or lower save_total_limit", str(final))
