"""GRPO math (torch only): group advantages, the token loss, one optimizer step, data-parallel sharding and
all-reduce."""
