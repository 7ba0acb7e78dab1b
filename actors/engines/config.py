"""Re-export of RolloutConfig, which lives in learner/config/rollout.py with the rest of the config tree.

Kept so that `from actors.engines.config import RolloutConfig` (engines, tests, benchmarks) keeps working.
"""

from learner.config.rollout import RolloutConfig

__all__ = ["RolloutConfig"]
