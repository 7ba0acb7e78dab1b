"""benchmarks/vs_trl.py's arithmetic: seconds per step after warm-up, time outside the steps, merged peaks,
the same-prompts check, and the list of differing settings it prints (taken from its docstring)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


pm = _load("proc_memory")
vt = _load("vs_trl")
MB = 1024 * 1024


def _run(walls, wall, pss_mb, rewards=None, ids=None, **extra):
    peaks = pm.MemoryPeaks()
    peaks.update({"driver": (2 * pss_mb * MB, pss_mb * MB, 1)})
    return {"walls": walls, "wall": wall, "peaks": peaks, "rewards": rewards or [0.0] * len(walls),
            "sample_ids": ids or [], "load": (1.0, 2.0), **extra}


def test_seconds_per_step_is_the_median_over_reps_of_each_runs_median_after_warmup() -> None:
    runs = [_run([9.0, 1.0, 2.0, 3.0], 20.0, 100), _run([9.0, 4.0, 4.0, 4.0], 30.0, 120),
            _run([9.0, 5.0, 6.0, 7.0], 40.0, 110)]
    s = vt.summarize("sync", runs, warmup=1)
    assert s["per_rep"] == [2.0, 4.0, 6.0]
    assert s["s_per_step"] == 4.0
    assert s["outside"] == 30.0 - 21.0  # median of wall minus the sum of all step walls (first step included)
    assert s["pss"] == [100, 120, 110]


def test_idle_and_push_metrics_are_medians_after_warmup() -> None:
    runs = [_run([1.0] * 4, 10.0, 1, **{"time/weight_sync": [5.0, 0.01, 0.03, 0.02]})]
    assert vt.summarize("sync", runs, warmup=1)["time/weight_sync"] == 0.02
    assert "rollout/idle_ratio" not in vt.summarize("trl", runs, warmup=1)


def test_merged_peaks_take_each_roles_largest_peak_over_reps() -> None:
    a, b = pm.MemoryPeaks(), pm.MemoryPeaks()
    a.update({"LearnerActor": (10 * MB, 8 * MB, 1), "ray: raylet": (3 * MB, 2 * MB, 1)})
    b.update({"LearnerActor": (9 * MB, 9 * MB, 1)})
    merged = vt.merged_peaks([{"peaks": a}, {"peaks": b}])
    assert merged.roles["LearnerActor"] == (10 * MB, 9 * MB, 1)
    assert merged.total_pss == 10 * MB and merged.ray_system_pss == 2 * MB
    assert merged.at_peak == {"LearnerActor": (10 * MB, 8 * MB, 1), "ray: raylet": (3 * MB, 2 * MB, 1)}


def test_same_prompts_counts_equal_steps_against_the_first_sync_run() -> None:
    ref = [["a", "b"], ["c", "d"]]
    other = [["a", "b"], ["x", "d"]]
    results = {"sync": [_run([1.0, 1.0], 2.0, 1, ids=ref)], "trl": [_run([1.0, 1.0], 2.0, 1, ids=other)]}
    assert vt.same_prompts(results) == "steps whose prompts equal sync[0]'s: sync[0] 2/2, trl[0] 1/2"


def test_every_differing_setting_of_the_docstring_is_printed() -> None:
    assert len(vt.DIFFERENCES) == 8
    for key in ("process layout", "threads", "policy lag", "importance weights", "optimizer", "random streams",
                "prompt limit", "outputs"):
        assert sum(d.startswith(key + ":") for d in vt.DIFFERENCES) == 1, key
    assert vt.SAME.startswith("Same in all arms: model and tokenizer") and "\n" not in vt.SAME
