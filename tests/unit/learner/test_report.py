"""The run report: plots from a synthetic run directory, the self-contained HTML, skipped plots on missing data."""

from __future__ import annotations

import base64
import json
import math
import random
import re

import pytest
import yaml

from learner.report import build_report, eval_table, main
from learner.reporting.plots import load_run, rolling, series

DOMAINS = ("blocksworld", "ferry")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def step_record(step: int, rng: random.Random) -> dict:
    """One metrics.jsonl record with the keys learner.driver.loop writes (values made up, shapes real)."""
    rec: dict = {"step": step, "reward/mean": rng.uniform(-1, 1), "reward/std": rng.uniform(0, 1)}
    for d in DOMAINS:
        rec[f"reward/{d}/mean"] = rng.uniform(-1, 1)
        rec[f"reward/{d}/std"] = rng.uniform(0, 0.5)
        rec[f"success/{d}"] = rng.random()
        for b in ("easy", "medium", "hard"):
            rec[f"reward_bucket/{d}/{b}/mean"] = rng.uniform(-1, 1)
            rec[f"curriculum/weight/{d}/{b}"] = {"easy": 0.7, "medium": 0.25, "hard": 0.05}[b]
    rec["labels"] = {"success_plans": rng.randint(0, 8), "plan_format_error": rng.randint(0, 8),
                     "goal_not_satisfied": rng.randint(0, 4)}
    rec["batch/domain_counts"] = {d: 2 for d in DOMAINS}
    rec.update({"completion/length_mean": 40.0 + step, "completion/length_max": 64,
                "completion/truncated_share": 0.1, "frac_zero_std_groups": 0.25,
                "learner/loss": rng.gauss(0, 0.1), "learner/kl": 0.001 * step, "clip_ratio/region_mean": 0.01,
                "clip_ratio/low_mean": 0.004, "learner/entropy": 2.0, "policy_version_lag": 0,
                "rollout/tokens_per_second": 900.0, "sampler/step": float(step)})
    for phase, t in (("sample", 0.01), ("rollout", 2.0), ("reward", 0.3), ("learn", 1.5), ("weight_sync", 0.1)):
        rec[f"time/{phase}"] = t
    rec["time/step"] = 3.91
    return rec


def eval_report(rates: dict[str, float], n: int = 20) -> dict:
    def res(rate: float) -> dict:
        k = round(rate * n)
        return {"n": n, "success_rate": k / n, "ci95": [max(0, k / n - 0.2), min(1, k / n + 0.2)],
                "pass_at_k": k / n, "problems": n, "labels": {"success_plans": k}}

    return {"k": 1, "overall": res(sum(rates.values()) / len(rates)),
            "domains": {d: res(r) for d, r in rates.items()},
            "buckets": {f"{d}/{b}": res(r) for d, r in rates.items() for b in ("easy", "hard")}}


def make_run(root):
    rng = random.Random(0)
    run = root / "tiny-cpu-20250101-000000"
    run.mkdir()
    with (run / "metrics.jsonl").open("w") as fh:
        for step in range(12):
            fh.write(json.dumps(step_record(step, rng)) + "\n")
    (run / "config.yaml").write_text(yaml.safe_dump({"run_name": "tiny-cpu", "max_steps": 12,
                                                     "eval": {"collapse_margin": 0.3}}))
    (run / "eval_before_after.json").write_text(json.dumps({
        "before": eval_report({"blocksworld": 0.2, "ferry": 0.1}),
        "after": eval_report({"blocksworld": 0.6, "ferry": 0.05})}))
    (run / "eval").mkdir()
    for step, bw in ((4, 0.8), (8, 0.75), (11, 0.1)):  # blocksworld collapses at step 11
        (run / "eval" / f"step-{step}.json").write_text(json.dumps(eval_report({"blocksworld": bw, "ferry": 0.3})))
    return run


@pytest.fixture
def run_dir(tmp_path):
    return make_run(tmp_path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(run dir, report) of the full synthetic run, built once (plots take a few seconds)."""
    run = make_run(tmp_path_factory.mktemp("full"))
    return run, build_report(run)


def embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_full_run_gives_every_plot_embedded_and_the_tables(built):
    run, report = built
    names = {p.name for p in report.plots}
    assert names == {"reward", "success", "labels", "curriculum", "eval_buckets", "eval_steps", "reward_buckets",
                     "lengths", "learner", "time", "throughput"}, report.notes
    assert report.html_path == run / "report" / "report.html"
    for plot in report.plots:
        assert plot.path.read_bytes().startswith(PNG_MAGIC) and plot.path.parent == run / "report"
    page = report.html_path.read_text()
    pngs = embedded_pngs(page)
    assert len(pngs) == len(report.plots) and all(p.startswith(PNG_MAGIC) for p in pngs)
    # self-contained: nothing fetched from elsewhere, no script
    assert not re.search(r'(src|href)="(?!data:)', page) and "<script" not in page
    assert "run_name: tiny-cpu" in page  # config.yaml shown
    assert "0.20 [0.00, 0.40]" in page and "0.60 [0.40, 0.80]" in page and "+0.40" in page  # before -> after
    assert "step 11" in page and "Latest in-training evaluation" in page


def test_collapse_alert_from_eval_files_is_on_the_page(built):
    _, report = built
    assert len(report.alerts) == 1 and "blocksworld" in report.alerts[0] and report.alerts[0].startswith("[eval]")
    assert "margin 0.30" in report.alerts[0]  # eval.collapse_margin read from config.yaml
    assert "blocksworld success 0.10" in report.html_path.read_text()


def test_metrics_only_run_skips_eval_plots_with_notes(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rng = random.Random(1)
    rows = [{k: v for k, v in step_record(s, rng).items() if not k.startswith(("curriculum/", "time/"))}
            for s in range(5)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report = build_report(run)
    names = {p.name for p in report.plots}
    assert {"eval_buckets", "eval_steps", "curriculum", "time"}.isdisjoint(names)
    assert {"reward", "labels", "lengths", "learner"} <= names
    notes = "\n".join(report.notes)
    assert "config.yaml: missing" in notes and "curriculum/weight" in notes and "time/<phase>" in notes
    page = report.html_path.read_text()
    assert "config.yaml missing" in page and "Curriculum weights over steps: skipped" in page


def test_empty_run_dir_gives_a_page_of_notes(tmp_path):
    report = build_report(tmp_path)
    assert report.plots == () and report.alerts == ()
    assert any("metrics.jsonl: missing" in n for n in report.notes)
    assert report.html_path.exists() and embedded_pngs(report.html_path.read_text()) == []


def test_bad_lines_and_bad_eval_files_become_notes(run_dir):
    with (run_dir / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 12, "reward/me\n')
    (run_dir / "eval" / "step-12.json").write_text("{not json")
    (run_dir / "eval_before_after.json").write_text(json.dumps({"before": None}))
    report = build_report(run_dir)
    notes = "\n".join(report.notes)
    assert "metrics.jsonl line 13: not JSON" in notes
    assert "step-12.json: not JSON" in notes
    assert "no 'after' report" in notes
    assert "reward" in {p.name for p in report.plots}


def test_malformed_eval_reports_become_notes(run_dir):
    bad = {"k": 1, "domains": {"ferry": {"n": 3}}, "buckets": {"ferry/easy": {"n": 3}}}
    (run_dir / "eval_before_after.json").write_text(json.dumps({"before": bad, "after": bad}))
    for path in (run_dir / "eval").iterdir():
        path.write_text(json.dumps(bad))
    report = build_report(run_dir)
    notes = "\n".join(report.notes)
    assert "evaluation tables skipped: malformed report (KeyError" in notes
    assert "Held-out success per bucket: skipped, malformed data" in notes
    assert "reward" in {p.name for p in report.plots}


def test_nan_rewards_and_missing_keys_on_some_steps_do_not_break_plots(tmp_path):
    rows = [{"step": 0, "reward/mean": math.nan, "reward/ferry/mean": math.nan, "labels": {}},
            {"step": 1, "reward/mean": 0.5, "reward/ferry/mean": 0.5, "reward/ferry/std": 0.1,
             "labels": {"success_plans": 2}, "time/rollout": 1.0},
            {"step": 2, "time/rollout": 1.2, "time/learn": 0.5}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r, allow_nan=True) for r in rows))
    report = build_report(tmp_path)
    assert {"reward", "labels", "time"} <= {p.name for p in report.plots}


def test_eval_table_before_after_and_single():
    before, after = eval_report({"ferry": 0.5}), eval_report({"ferry": 0.25})
    table = eval_table(before, after)
    assert "<td>ferry</td>" in table and "-0.25" in table and 'class="down"' in table and "overall" in table
    single = eval_table(None, after, "buckets")
    assert "ferry/easy" in single and "pass@k" in single and "overall" not in single


def test_series_and_rolling_helpers(built):
    data = load_run(built[0])
    steps, values = series(data.records, "completion/length_mean")
    assert steps == list(range(12)) and values[3] == 43.0
    assert rolling([1.0, math.nan, 3.0, 5.0], 2) == [1.0, 1.0, 3.0, 4.0]


def test_cli_prints_the_report_path(built, tmp_path, capsys):
    run, _ = built
    assert main([str(run), "--out", str(tmp_path / "r"), "--margin", "0.8"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "r" / "report.html") in out and "11 plots" in out and "ALERT" not in out
    assert main([str(tmp_path / "nope")]) == 2
    assert "no such run directory" in capsys.readouterr().err
