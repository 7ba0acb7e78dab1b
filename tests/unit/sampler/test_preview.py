"""`python -m sampler.preview`: per-step weights and composition, the bucket table, and --json output."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections import Counter

import pytest

from sampler.preview import main, parse_args, run
from sampler.synthetic import write_synthetic_dataset


@pytest.fixture
def data_root(tmp_path):
    write_synthetic_dataset(tmp_path, {"ferry": 40, "spanner": 40, "delivery": 40}, seed=4, prompt_chars=10)
    return tmp_path


def test_json_lines_per_step_then_bucket_table(data_root):
    out = io.StringIO()
    run(parse_args(["--data-root", str(data_root), "--batch-size", "6", "--steps", "10", "--max-steps", "10",
                    "--json", "--seed", "2"]), out)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    steps, table = lines[:-1], lines[-1]
    assert [s["step"] for s in steps] == list(range(10))
    assert steps[0]["weights"]["ferry"] == {"easy": 0.7, "medium": 0.25, "hard": 0.05}
    assert steps[9]["weights"]["spanner"] == {"easy": 0.2, "medium": 0.4, "hard": 0.4}
    for s in steps:
        assert Counter(x["domain"] for x in s["samples"]) == {"ferry": 2, "spanner": 2, "delivery": 2}
        assert set(s["samples"][0]) == {"sample_id", "domain", "bucket", "difficulty_score", "problem_file"}
    assert sum(r["count"] for r in table["buckets"] if r["domain"] == "ferry") == 40


def test_text_output_and_domain_filter(data_root, capsys):
    main(["--data-root", str(data_root), "--batch-size", "4", "--steps", "3", "--domains", "ferry", "spanner"])
    text = capsys.readouterr().out
    assert "step    0  weights easy=0.70 medium=0.25 hard=0.05" in text
    assert text.count("domains ferry=2 spanner=2") == 3 and "delivery" not in text
    assert "domain        bucket    count  score range" in text


def test_cli_reports_divisibility_error(data_root):
    proc = subprocess.run([sys.executable, "-m", "sampler.preview", "--data-root", str(data_root),
                           "--batch-size", "4", "--steps", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "batch_size (4) must be divisible by num_domains (3)" in proc.stderr
