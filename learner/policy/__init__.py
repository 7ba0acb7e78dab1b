"""The policy: base model and LoRA loading (4-bit, Unsloth), checkpoints, the tiny CPU model, prompt encoding."""
