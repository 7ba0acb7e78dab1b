"""Shared helpers of the datagen tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under `root` by relative path, metadata.json without build_seconds (the one field that may
    differ between two builds of the same data)."""
    out = {}
    for f in sorted(root.rglob("*")):
        if f.is_file():
            data = f.read_bytes()
            if f.name == "metadata.json":
                meta = json.loads(data)
                meta.pop("build_seconds")
                data = json.dumps(meta).encode()
            out[str(f.relative_to(root))] = data
    return out


@pytest.fixture
def data_tree():
    """`tree_bytes`, for comparing two builds byte for byte."""
    return tree_bytes
