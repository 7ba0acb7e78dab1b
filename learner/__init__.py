"""GRPO learner: loss, advantages, model and LoRA loading, checkpoints, and the driver `learner.main`."""
