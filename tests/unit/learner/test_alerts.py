"""Collapse alerts: a domain falling below its best by more than the margin, from metrics.jsonl and eval files."""

from __future__ import annotations

import json
import math

import pytest

from learner.alerts import CollapseDetector, main, replay, scan_run, success_from_records


def write_metrics(path, rows) -> None:
    with (path / "metrics.jsonl").open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, allow_nan=True) + "\n")


def collapsing_run(n: int = 30) -> list[dict]:
    """blocksworld climbs to 0.8, then falls to 0.1 from step 20; ferry stays near 0.5."""
    rows = []
    for step in range(n):
        bw = min(0.8, 0.1 + 0.07 * step) if step < 20 else 0.1
        rows.append({"step": step, "reward/mean": 0.0, "success/blocksworld": bw, "success/ferry": 0.5})
    return rows


def test_detector_fires_once_when_blocksworld_falls_from_0_8_to_0_1():
    det = CollapseDetector(margin=0.3)
    assert det.update(0, {"blocksworld": 0.8, "ferry": 0.4}) == []
    assert det.update(1, {"blocksworld": 0.6, "ferry": 0.4}) == []  # 0.2 below best: inside the margin
    lines = det.update(2, {"blocksworld": 0.1, "ferry": 0.4})
    assert len(lines) == 1
    assert "blocksworld" in lines[0] and "step 2" in lines[0] and "0.80" in lines[0] and "0.10" in lines[0]
    assert det.update(3, {"blocksworld": 0.0, "ferry": 0.4}) == []  # still collapsed: no repeat
    alert = det.alerts[0]
    assert (alert.domain, alert.best, alert.best_step, alert.current) == ("blocksworld", 0.8, 0, 0.1)


def test_detector_rearms_after_recovery_and_tracks_new_best():
    det = CollapseDetector(margin=0.2)
    det.update(0, {"ferry": 0.5})
    assert len(det.update(1, {"ferry": 0.2})) == 1
    assert det.update(2, {"ferry": 0.45}) == []  # back within the margin
    det.update(3, {"ferry": 0.9})  # new best
    lines = det.update(4, {"ferry": 0.6})
    assert len(lines) == 1 and "0.90" in lines[0]
    assert det.best() == {"ferry": 0.9}


def test_detector_skips_nan_and_missing_domains():
    det = CollapseDetector(margin=0.1)
    det.update(0, {"ferry": 0.9, "grippers": 0.5})
    assert det.update(1, {"ferry": math.nan}) == []
    assert det.best() == {"ferry": 0.9, "grippers": 0.5}


def test_window_averages_noisy_batches():
    # one bad batch among good ones does not alert with window 3; a sustained drop does
    series = [(i, {"d": v}) for i, v in enumerate([0.8, 0.8, 0.8, 0.2, 0.8, 0.8, 0.1, 0.1, 0.1])]
    assert replay(series[:6], margin=0.3, window=3) == []
    assert len(replay(series, margin=0.3, window=3)) == 1
    assert len(replay(series[:6], margin=0.3, window=1)) == 1


@pytest.mark.parametrize("margin,window", [(-0.1, 1), (1.5, 1), (0.2, 0)])
def test_bad_arguments_are_rejected(margin, window):
    with pytest.raises(ValueError, match="must be"):
        CollapseDetector(margin, window)


def test_state_dict_round_trip_keeps_best_and_alerting():
    det = CollapseDetector(margin=0.2)
    det.update(0, {"ferry": 0.7})
    det.update(1, {"ferry": 0.1})
    again = CollapseDetector(margin=0.2)
    again.load_state_dict(json.loads(json.dumps(det.state_dict())))
    assert again.best() == {"ferry": 0.7}
    assert again.update(2, {"ferry": 0.1}) == []  # already alerting
    assert len(again.update(3, {"ferry": 0.6}) + again.update(4, {"ferry": 0.0})) == 1


def test_scan_synthetic_metrics_file_finds_blocksworld_collapse(tmp_path):
    write_metrics(tmp_path, collapsing_run())
    lines = scan_run(tmp_path, margin=0.3, window=3)
    assert len(lines) == 1
    assert "blocksworld" in lines[0] and "[train" in lines[0]
    assert "ferry" not in lines[0]
    assert scan_run(tmp_path, margin=0.75, window=3) == []  # 0.8 -> 0.1 is a 0.7 drop


def test_scan_tolerates_a_cut_last_line(tmp_path):
    write_metrics(tmp_path, collapsing_run())
    with (tmp_path / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 30, "success/blocksw')
    assert len(scan_run(tmp_path, margin=0.3, window=3)) == 1


def test_scan_prefers_eval_files(tmp_path):
    write_metrics(tmp_path, collapsing_run())
    (tmp_path / "eval").mkdir()
    for step, rate in [(10, 0.6), (20, 0.65), (30, 0.2)]:
        report = {"k": 1, "domains": {"grippers": {"success_rate": rate, "n": 20}}}
        (tmp_path / "eval" / f"step-{step}.json").write_text(json.dumps(report))
    lines = scan_run(tmp_path, margin=0.3)
    assert len(lines) == 1 and lines[0].startswith("[eval]") and "grippers" in lines[0] and "step 30" in lines[0]


def test_success_from_records_reads_only_success_keys():
    rows = [{"step": 3, "success/ferry": 0.5, "reward/ferry/mean": 0.2}, {"step": 4, "reward/mean": 0.1}]
    assert success_from_records(rows) == [(3, {"ferry": 0.5})]


def test_cli_exit_code_and_output(tmp_path, capsys):
    write_metrics(tmp_path, collapsing_run())
    assert main([str(tmp_path), "--margin", "0.3", "--window", "3"]) == 1
    assert "blocksworld" in capsys.readouterr().out
    assert main([str(tmp_path), "--margin", "0.9"]) == 0
    assert "no collapse alerts" in capsys.readouterr().out
    assert main([str(tmp_path / "missing")]) == 2
