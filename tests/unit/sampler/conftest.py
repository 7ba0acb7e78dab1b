"""Shared sampler test data: five synthetic domains of 120 records (a test file may define its own data_root)."""

from __future__ import annotations

import pytest

from sampler.synthetic import DOMAINS, write_synthetic_dataset


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_synthetic_dataset(root, dict.fromkeys(DOMAINS, 120), seed=1, prompt_chars=20)
    return root
