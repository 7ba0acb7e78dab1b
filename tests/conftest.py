"""Shared pytest setup: passive OpenMP threads, and `gpu` tests skip cleanly on machines without CUDA."""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: test processes and Ray actors share 2 cores, and
# spinning threads of one process starved another (a 0.7 s test took 41 s).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
