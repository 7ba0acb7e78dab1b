"""Held-out evaluation: generate for test problems, score every plan, success per domain with 95 % intervals."""
