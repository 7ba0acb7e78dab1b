"""Re-export of RolloutConfig, which lives in learner/rollout_config.py with the rest of the config tree.

Kept so that `from actors.engines.config import RolloutConfig` (engines, tests, benchmarks) keeps working.
"""

from learner.rollout_config import RolloutConfig

__all__ = ["RolloutConfig"]
