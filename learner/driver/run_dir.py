"""Run directories, the one logging setup (console + run.log), and the progress-bar helper."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RunDirError(RuntimeError):
    """The run directory cannot be created without overwriting another run."""


def utc_stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime())


def create_run_dir(runs_root: str | Path, run_name: str, output_dir: str | Path | None = None) -> Path:
    """Create `runs_root/<run_name>-<UTC time>/` (or `output_dir`), never reusing one that holds a run."""
    if output_dir is not None:
        path = Path(output_dir)
        if (path / "config.yaml").exists():
            raise RunDirError(f"{path} already holds a run (config.yaml exists); pick another output_dir")
        path.mkdir(parents=True, exist_ok=True)
    else:
        root = Path(runs_root)
        root.mkdir(parents=True, exist_ok=True)
        base = f"{run_name}-{utc_stamp()}"
        path = root / base
        suffix = 1
        while True:
            try:
                path.mkdir()
                break
            except FileExistsError:
                suffix += 1
                path = root / f"{base}-{suffix}"
    for sub in ("checkpoints", "samples"):
        (path / sub).mkdir(exist_ok=True)
    return path


def setup_logging(run_dir: str | Path | None = None, level: str = "INFO") -> logging.Logger:
    """One format for console and `run.log`; calling it again replaces the handlers (no duplicates)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_pddl_grpo", False):
            root.removeHandler(handler)
            handler.close()
    formatter = logging.Formatter(LOG_FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if run_dir is not None:
        handlers.append(logging.FileHandler(Path(run_dir) / "run.log"))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler._pddl_grpo = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    return logging.getLogger("pddl_grpo")


def progress(iterable: Iterable[T], total: int | None = None, desc: str = "", enabled: bool = True) -> Iterable[T]:
    """A tqdm bar on stderr (its `set_postfix` shows live numbers) when enabled; the plain iterable otherwise."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, dynamic_ncols=True, mininterval=1.0)
