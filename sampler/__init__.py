"""Curriculum sampler: JSONL loading, difficulty, buckets, curriculum and domain-balanced batches."""
