"""The typed config tree: `run` (RunConfig, its sections, load/dump), `learner` (LearnerConfig, the LoRA defaults),
`rollout` (RolloutConfig). Plain pydantic: every role imports it, it imports no actors code."""
