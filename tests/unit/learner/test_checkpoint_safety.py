"""Checkpoint files are loaded with weights_only=True (issue 19): a crafted file cannot run code."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from learner.policy.checkpoint import _remove_leftovers, _torch_load, plain


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch /tmp/pddl_grpo_pwned",))


def test_a_crafted_checkpoint_file_is_refused_not_run(tmp_path: Path) -> None:
    path = tmp_path / "extra.pt"
    torch.save({"x": _RunsCode()}, path)
    with pytest.raises(pickle.UnpicklingError, match="weights_only"):
        _torch_load(path)


def test_plain_types_round_trip_and_others_are_refused_at_save(tmp_path: Path) -> None:
    import collections

    import numpy as np

    state = plain({"a": [1, 2.5, "s", None, (3, 4)], "n": np.float64(0.5), "d": collections.deque([1])})
    torch.save(state, tmp_path / "s.pt")
    assert _torch_load(tmp_path / "s.pt") == {"a": [1, 2.5, "s", None, (3, 4)], "n": 0.5, "d": [1]}
    with pytest.raises(TypeError, match=r"extra\['bad'\] is a .*_RunsCode"):
        plain({"bad": _RunsCode()})


def test_stale_temporary_directories_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".tmp-step-3-123").mkdir()
    (tmp_path / ".old-step-2-456").mkdir()
    (tmp_path / "step-2").mkdir()
    _remove_leftovers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-2"]
