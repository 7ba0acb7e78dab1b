"""A full disk during a checkpoint save (issue 19 item 4): the message names the directory and the bytes.

The disk is not really filled (that needs a small mounted filesystem, root on most machines): the
ENOSPC is injected into torch.save of the optimizer state, after the adapter is written, so the real
save path (temporary directory, cleanup, byte counts) runs around it.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch

from learner.config.learner import LearnerConfig
from learner.grpo.train_step import GRPOTrainerCore, TrainSample
from learner.policy.checkpoint import list_checkpoints, save_checkpoint
from learner.policy.model import load_policy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_injected_enospc_names_the_directory_and_bytes_and_keeps_the_previous_checkpoint(
        tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = LearnerConfig(base_model=str(tiny_dir), lora_rank=4, use_gradient_checkpointing=False)
    model, tok = load_policy(cfg)
    core = GRPOTrainerCore(model, tok, cfg, num_training_steps=10)
    core.step([TrainSample((2, 3, 4), (5, 6, 7, 1), 1.0), TrainSample((2, 3), (8, 9, 1), -1.0)])
    first = save_checkpoint(tmp_path, 0, core.model, core.optimizer, core.scheduler)
    real_save = torch.save

    def full_disk(obj, path, *args, **kwargs):
        if str(path).endswith("optimizer.pt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match=rf"no space left on the device of {tmp_path / 'checkpoints'} to write step-1: "
                                      r"a checkpoint needs about [\d,]+ bytes \([\d,]+ written when it failed\), "
                                      r"[\d,]+ bytes are free") as info:
        save_checkpoint(tmp_path, 1, core.model, core.optimizer, core.scheduler)
    assert info.value.errno == errno.ENOSPC
    assert list_checkpoints(tmp_path) == [(0, first)]  # the previous checkpoint is untouched
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-0"]  # no temporary left behind
