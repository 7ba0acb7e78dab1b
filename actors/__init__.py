"""Ray roles of pddl-grpo: sampler, rollout, reward and learner actors (the only layer that imports ray)."""
