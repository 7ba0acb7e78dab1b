"""Rollout engines behind one interface: HF transformers (CPU/GPU) and vLLM (GPU, imported lazily)."""
