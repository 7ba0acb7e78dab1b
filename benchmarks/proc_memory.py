"""Peak memory per role of a process tree (a run, its Ray system processes and workers), read from /proc.

    from proc_memory import MemorySampler
    with MemorySampler(os.getpid()) as mem:     # samples the tree every 0.5 s on a thread
        ...
    print(format_peaks(mem.peaks))

Roles come from each process's title: Ray workers set theirs to `ray::RolloutActor` (`ray::RolloutActor.generate`
while a call runs), idle pooled workers to `ray::IDLE`; Ray's own processes are gcs_server, raylet, the dashboard,
its agents and the log monitor; the tree's root is the driver. PSS (proportional set size, from
/proc/PID/smaps_rollup) splits pages shared between processes (torch's libraries, copy-on-write) among them, so
summing PSS over processes counts each page once; summed RSS counts shared pages once per process and overstates.
Peaks per role are each role's own maximum; the total peak is the largest sum seen at one instant (not the sum of
the roles' peaks, which need not coincide). Linux only.
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
RAY_SYSTEM = "ray system"
_PR_SET_CHILD_SUBREAPER = 36

# Ray's own processes, recognised by a piece of their command line (first match wins)
_RAY_SYSTEM_MARKERS = (
    ("gcs_server", "ray: gcs_server"),
    ("raylet", "ray: raylet"),
    ("dashboard/dashboard.py", "ray: dashboard"),
    ("dashboard/agent.py", "ray: dashboard agent"),
    ("runtime_env/agent", "ray: runtime_env agent"),
    ("log_monitor.py", "ray: log monitor"),
    ("autoscaler/_private/monitor.py", "ray: monitor"),
    ("ray-dashboard-", "ray: dashboard modules"),  # the dashboard's module subprocesses (ray-dashboard-JobHead-0)
    ("default_worker.py", "ray: starting worker"),  # a worker before it takes its actor's title
)
_RAY_AGENTS = {"DashboardAgent": "ray: dashboard agent", "RuntimeEnvAgent": "ray: runtime_env agent"}  # ray::<title>


def role_of(cmdline: str, *, is_root: bool = False) -> str:
    """The role of one process from its command line (NULs already turned into spaces).

    `ray::RolloutActor.generate` and `ray::rollout-0:RolloutActor` -> RolloutActor, `ray::IDLE` -> ray: idle
    worker, a Ray system process -> its `ray: ...` name, the tree's root -> driver, anything else ->
    `other: <program name>`.
    """
    if is_root:
        return "driver"
    text = cmdline.strip()
    if text.startswith("ray::"):
        name = text[len("ray::"):].split()[0] if text[len("ray::"):].strip() else ""
        # a named actor's title is `ray::<actor name>:<Class>.<method>`; keep the class
        name = name.rsplit(":", 1)[-1].split(".")[0]
        return _RAY_AGENTS.get(name) or ("ray: idle worker" if name in ("IDLE", "") else name)
    for marker, role in _RAY_SYSTEM_MARKERS:
        if marker in text:
            return role
    return f"other: {os.path.basename(text.split()[0])}" if text else "other: (no command line)"


def is_ray_system(role: str) -> bool:
    return role.startswith("ray: ")


def inherit_role(role: str, parent_role: str | None) -> str:
    """A helper process of a Ray system process (the dashboard's multiprocessing forkserver and resource
    tracker) counts as its parent's role; everything else keeps its own."""
    if role.startswith("other: ") and parent_role is not None and is_ray_system(parent_role):
        return parent_role
    return role


def parse_smaps_rollup(text: str) -> tuple[int, int]:
    """(RSS, PSS) in bytes from the text of /proc/PID/smaps_rollup; ValueError naming what is missing."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            parts = rest.split()
            if len(parts) != 2 or parts[1] != "kB":
                raise ValueError(f"smaps_rollup: cannot read the {key} line {line!r}")
            found[key] = int(parts[0]) * 1024
    missing = [k for k in ("Rss", "Pss") if k not in found]
    if missing:
        raise ValueError(f"smaps_rollup: no {'/'.join(missing)} line")
    return found["Rss"], found["Pss"]


def parse_stat_ppid(text: str) -> int:
    """The parent pid from the text of /proc/PID/stat (the program name in parentheses may hold spaces)."""
    after = text.rsplit(")", 1)
    if len(after) != 2 or len(after[1].split()) < 2:
        raise ValueError(f"/proc/PID/stat: cannot read {text[:80]!r}")
    return int(after[1].split()[1])


def descendants(root: int, parents: dict[int, int]) -> list[int]:
    """root and every pid below it in a {pid: parent pid} map, root first."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out, seen, todo = [], set(), [root]
    while todo:  # breadth first; `seen` guards against a pid reused inside the map
        pid = todo.pop(0)
        if pid in seen:
            continue
        seen.add(pid)
        out.append(pid)
        todo.extend(sorted(children.get(pid, [])))
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):  # the process ended or is not ours
        return None


def parent_map() -> dict[int, int]:
    parents = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _read(entry / "stat")
            if stat:
                parents[int(entry.name)] = parse_stat_ppid(stat)
    return parents


def sample_tree(root: int) -> dict[str, tuple[int, int, int]]:
    """{role: (RSS bytes, PSS bytes, processes)} of the tree under root now; processes that end meanwhile are
    left out. Kernel threads and zombies have no smaps and are skipped."""
    roles: dict[str, tuple[int, int, int]] = {}
    parents = parent_map()
    seen: dict[int, str] = {}
    for pid in descendants(root, parents):  # parents before children
        smaps = _read(PROC / str(pid) / "smaps_rollup")
        cmd = _read(PROC / str(pid) / "cmdline")
        if not smaps or cmd is None:
            continue
        rss, pss = parse_smaps_rollup(smaps)
        role = inherit_role(role_of(cmd.replace("\0", " "), is_root=pid == root), seen.get(parents.get(pid, -1)))
        seen[pid] = role
        r, p, n = roles.get(role, (0, 0, 0))
        roles[role] = (r + rss, p + pss, n + 1)
    return roles


@dataclass
class MemoryPeaks:
    """Running peaks: each role's own maxima, and the largest instantaneous totals (all, Ray system)."""

    roles: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # role -> (peak RSS, peak PSS, procs)
    total_rss: int = 0
    total_pss: int = 0
    ray_system_pss: int = 0
    samples: int = 0
    at_peak: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # the sample of the total PSS peak

    def update(self, sample: dict[str, tuple[int, int, int]]) -> None:
        self.samples += 1
        for role, (rss, pss, n) in sample.items():
            r, p, k = self.roles.get(role, (0, 0, 0))
            self.roles[role] = (max(r, rss), max(p, pss), max(k, n))
        self.total_rss = max(self.total_rss, sum(v[0] for v in sample.values()))
        total_pss = sum(v[1] for v in sample.values())
        if total_pss > self.total_pss:
            self.total_pss, self.at_peak = total_pss, dict(sample)
        self.ray_system_pss = max(self.ray_system_pss,
                                  sum(v[1] for k, v in sample.items() if is_ray_system(k)))


def become_subreaper() -> bool:
    """Make this process adopt orphaned descendants (a daemonised Ray process stays in the sampled tree)."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class MemorySampler:
    """Samples the tree under `root` every `interval_s` seconds on a daemon thread until stopped."""

    def __init__(self, root: int, interval_s: float = 0.5) -> None:
        self.root, self.interval_s = root, interval_s
        self.peaks = MemoryPeaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peaks.update(sample_tree(self.root))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def format_peaks(peaks: MemoryPeaks, title: str = "") -> str:
    """A table: peak PSS and RSS per role (MB, largest first), its PSS at the instant of the total peak, the Ray
    system's sum and the totals."""
    mb = 1024 * 1024
    lines = [f"{title or 'role':<28} {'peak PSS MB':>11} {'peak RSS MB':>11} {'procs':>5} {'PSS at total peak':>17}"]
    for role, (rss, pss, n) in sorted(peaks.roles.items(), key=lambda kv: -kv[1][1]):
        at = peaks.at_peak.get(role, (0, 0, 0))[1]
        lines.append(f"{role:<28} {pss / mb:>11.0f} {rss / mb:>11.0f} {n:>5} {at / mb:>17.0f}")
    lines.append(f"{'Ray system (sum, at once)':<28} {peaks.ray_system_pss / mb:>11.0f}")
    lines.append(f"{'total (at once)':<28} {peaks.total_pss / mb:>11.0f} {peaks.total_rss / mb:>11.0f}"
                 f"   ({peaks.samples} samples)")
    return "\n".join(lines)
