"""Import Unsloth before transformers, peft and trl, in a process about to load a policy through it.

Unsloth patches those libraries when it is imported; imported after them, it warns ("Unsloth should
be imported before [transformers, peft] ...") and some patches do not apply. So this module imports
neither, and the learner actor calls `import_unsloth_first(config)` before it imports learner.policy.model.
"""

from __future__ import annotations

import importlib.util
import logging
import sys

from learner.config.learner import LearnerConfig

log = logging.getLogger(__name__)

PATCHED_LIBRARIES = ("trl", "transformers", "peft")  # unsloth/_gpu_init.py's critical_modules


def wants_unsloth(config: LearnerConfig, cuda: bool | None = None) -> bool:
    """True when `config` loads through Unsloth here: use_unsloth, CUDA visible and unsloth installed."""
    if not config.use_unsloth:
        return False
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    return bool(cuda) and importlib.util.find_spec("unsloth") is not None


def import_unsloth_first(config: LearnerConfig, cuda: bool | None = None) -> bool:
    """Import unsloth now when the policy will load through it; returns whether it did.

    Logs a warning naming the libraries already imported (their patches may be missing): a caller
    imported them too early.
    """
    if not wants_unsloth(config, cuda):
        return False
    early = [name for name in PATCHED_LIBRARIES if name in sys.modules]
    if early and "unsloth" not in sys.modules:
        log.warning("unsloth is imported after %s: its patches to them may not apply", ", ".join(early))
    import unsloth  # noqa: F401  # GPU-only dependency; the import itself patches transformers, peft, trl

    return True
