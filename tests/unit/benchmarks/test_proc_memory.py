"""benchmarks/proc_memory.py: roles from process titles, /proc parsing, the tree walk and the peaks' arithmetic."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("proc_memory", ROOT / "benchmarks" / "proc_memory.py")
pm = importlib.util.module_from_spec(_spec)
sys.modules["proc_memory"] = pm  # dataclasses look their module up by name
_spec.loader.exec_module(pm)

MB = 1024 * 1024


@pytest.mark.parametrize(("cmdline", "role"), [
    ("ray::RolloutActor.generate", "RolloutActor"),
    ("ray::LearnerActor", "LearnerActor"),
    ("ray::rollout-0:RolloutActor.generate", "RolloutActor"),  # a named actor
    ("ray::reward-0:RewardActor", "RewardActor"),
    ("ray-dashboard-JobHead-0 ", "ray: dashboard modules"),
    ("ray::DashboardAgent", "ray: dashboard agent"),
    ("ray::RuntimeEnvAgent ", "ray: runtime_env agent"),
    ("", "other: (no command line)"),
    ("python3 /site-packages/ray/_private/workers/default_worker.py --node-ip-address=1", "ray: starting worker"),
    ("ray::SamplerActor.next_batch  ", "SamplerActor"),
    ("ray::IDLE", "ray: idle worker"),
    ("/usr/lib/python3/site-packages/ray/core/src/ray/gcs/gcs_server --log_dir=/tmp/ray", "ray: gcs_server"),
    ("/site-packages/ray/core/src/ray/raylet/raylet --raylet_socket_name=x", "ray: raylet"),
    ("python -u /site-packages/ray/dashboard/dashboard.py --host=127.0.0.1", "ray: dashboard"),
    ("python -u /site-packages/ray/dashboard/agent.py --node-ip-address=1", "ray: dashboard agent"),
    ("python -u /site-packages/ray/_private/runtime_env/agent/main.py", "ray: runtime_env agent"),
    ("python -u /site-packages/ray/_private/log_monitor.py --session-dir=x", "ray: log monitor"),
    ("/usr/bin/Validate -v d.pddl p.pddl plan", "other: Validate"),
])
def test_role_of_process_titles(cmdline: str, role: str) -> None:
    assert pm.role_of(cmdline) == role
    assert pm.is_ray_system(role) == role.startswith("ray: ")


def test_helpers_of_ray_system_processes_count_as_their_parent() -> None:
    helper = pm.role_of("python3 -B -c from multiprocessing.forkserver import main; main(25, 27)")
    assert pm.inherit_role(helper, "ray: dashboard") == "ray: dashboard"
    assert pm.inherit_role(helper, "driver") == helper  # a helper of the driver or of an actor stays "other"
    assert pm.inherit_role("RolloutActor", "ray: raylet") == "RolloutActor"  # workers are children of the raylet


def test_root_is_the_driver_whatever_its_title() -> None:
    assert pm.role_of("ray::RolloutActor", is_root=True) == "driver"


def test_parse_smaps_rollup() -> None:
    text = "55d0-7ffd ---p 00000000 00:00 0  [rollup]\nRss:  2048 kB\nPss:  1024 kB\nPss_Anon:  512 kB\n"
    assert pm.parse_smaps_rollup(text) == (2048 * 1024, 1024 * 1024)
    with pytest.raises(ValueError, match="no Pss line"):
        pm.parse_smaps_rollup("Rss: 10 kB\n")
    with pytest.raises(ValueError, match="Rss line"):
        pm.parse_smaps_rollup("Rss: 10 MB\nPss: 1 kB\n")


def test_parse_stat_ppid_with_spaces_and_parentheses_in_the_name() -> None:
    assert pm.parse_stat_ppid("123 (ray::Rollout Actor) (x)) S 77 123 123 0 -1") == 77
    with pytest.raises(ValueError, match="/proc/PID/stat"):
        pm.parse_stat_ppid("garbage")


def test_descendants_walks_the_tree_only() -> None:
    parents = {1: 0, 10: 1, 11: 10, 12: 10, 13: 11, 20: 1, 21: 20}
    assert pm.descendants(10, parents) == [10, 11, 12, 13]
    assert pm.descendants(13, parents) == [13]


def test_peaks_total_is_the_largest_instant_not_the_sum_of_role_peaks() -> None:
    peaks = pm.MemoryPeaks()
    peaks.update({"driver": (100 * MB, 80 * MB, 1), "ray: raylet": (50 * MB, 30 * MB, 1)})
    peaks.update({"driver": (40 * MB, 20 * MB, 1), "LearnerActor": (300 * MB, 200 * MB, 1)})
    assert peaks.roles["driver"] == (100 * MB, 80 * MB, 1)
    assert peaks.total_pss == 220 * MB  # second sample; the roles' peaks sum to 310 MB
    assert peaks.total_rss == 340 * MB
    assert peaks.ray_system_pss == 30 * MB
    assert peaks.at_peak == {"driver": (40 * MB, 20 * MB, 1), "LearnerActor": (300 * MB, 200 * MB, 1)}
    table = pm.format_peaks(peaks)
    assert table.splitlines()[1].split() == ["LearnerActor", "200", "300", "1", "200"]
    assert table.splitlines()[3].split() == ["ray:", "raylet", "30", "50", "1", "0"]  # gone at the total peak
    assert "220" in table.splitlines()[-1]


def test_sampler_sees_a_real_child_and_its_memory() -> None:
    # a child that holds 60 MB of touched memory: the tree's PSS must grow by about that much
    code = "import time; b = bytearray(60 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            roles = pm.sample_tree(os.getpid())
            other = roles.get("other: " + os.path.basename(sys.executable))
            if other and other[1] > 55 * MB:
                break
            time.sleep(0.2)
        assert other is not None and other[2] == 1, roles
        assert other[1] > 55 * MB and other[0] >= other[1], roles
        assert roles["driver"][2] == 1
    finally:
        child.kill()
        child.wait()
