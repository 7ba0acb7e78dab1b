"""Plots of a run report: read a run directory, draw each figure as a PNG (matplotlib, no display).

Used by `python -m learner.report RUN_DIR`. Each `plot_*` draws on a bare matplotlib Figure or
returns why it cannot (missing keys or files), so a partial run still gets the plots it can have.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from learner.reporting.alerts import load_eval_reports

BUCKETS = ("easy", "medium", "hard", "all")
# fixed colours so a label or bucket looks the same in every plot and every run
LABEL_COLORS = {"success_plans": "#2ca02c", "goal_not_satisfied": "#bcbd22", "precondition_violation": "#ff7f0e",
                "safety_constraints_violation": "#d62728", "empty_plan": "#7f7f7f", "plan_format_error": "#9467bd",
                "validator_error": "#000000"}
LABELS = tuple(LABEL_COLORS)  # stacking order: success at the bottom
BUCKET_COLORS = {"easy": "#2ca02c", "medium": "#ff7f0e", "hard": "#d62728", "all": "#1f77b4"}
PHASES = ("sample", "rollout", "reward", "learn", "weight_sync")
SMOOTH = 5  # steps in the rolling mean drawn over noisy per-batch curves


@dataclass(frozen=True)
class Plot:
    """One written figure."""

    name: str
    title: str
    path: Path


@dataclass
class RunData:
    """Everything read from a run directory; `notes` collects what was missing or unreadable."""

    run_dir: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    config_text: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    before_after: dict[str, Any] | None = None
    evals: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load_run(run_dir: Path) -> RunData:
    """Read a run directory; files that are missing or unreadable become notes."""
    import yaml

    data = RunData(run_dir)
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        for n, line in enumerate(metrics.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                data.records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a crash, or being written right now
                data.notes.append(f"metrics.jsonl line {n}: not JSON, skipped")
    else:
        data.notes.append("metrics.jsonl: missing, no training curves")
    cfg = run_dir / "config.yaml"
    if cfg.exists():
        data.config_text = cfg.read_text()
        try:
            data.config = yaml.safe_load(data.config_text) or {}
        except yaml.YAMLError as exc:
            data.notes.append(f"config.yaml: not valid YAML ({exc.__class__.__name__}); shown as text")
    else:
        data.notes.append("config.yaml: missing")
    ba = run_dir / "eval_before_after.json"
    if ba.exists():
        try:
            data.before_after = json.loads(ba.read_text())
        except json.JSONDecodeError as exc:
            data.notes.append(f"eval_before_after.json: not JSON ({exc.msg}), table skipped")
        else:
            if not isinstance((data.before_after or {}).get("after"), dict):
                data.notes.append("eval_before_after.json: no 'after' report, table skipped")
                data.before_after = None
    try:
        data.evals = load_eval_reports(run_dir / "eval")
    except ValueError as exc:
        data.notes.append(f"in-training evaluation skipped: {exc}")
    return data


# -- series helpers ---------------------------------------------------------------------------------
def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of a numeric key; records without it are left out."""
    steps, values = [], []
    for i, rec in enumerate(records):
        value = _num(rec.get(key))
        if value is not None:
            steps.append(int(rec.get("step", i)))
            values.append(value)
    return steps, values


def matching(records: list[dict[str, Any]], pattern: str) -> dict[str, str]:
    """{first group: key} of every key that fully matches `pattern` (one capture group), sorted."""
    rx = re.compile(pattern)
    found: dict[str, str] = {}
    for rec in records:
        for key in rec:
            m = rx.fullmatch(key)
            if m:
                found.setdefault(m.group(1), key)
    return dict(sorted(found.items()))


def rolling(values: list[float], window: int = SMOOTH) -> list[float]:
    """Trailing mean over `window` finite values (NaN where none)."""
    out = []
    for i in range(len(values)):
        part = [v for v in values[max(0, i - window + 1) : i + 1] if math.isfinite(v)]
        out.append(sum(part) / len(part) if part else math.nan)
    return out


def _colors(names: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {n: cmap(i % 10) for i, n in enumerate(names)}


def _grid(fig, n: int, ncols: int = 3):
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    return [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]


# -- plots: each draws on `fig` or returns why it cannot ----------------------------------------------
def plot_reward(d: RunData, fig) -> str | None:
    domains = matching(d.records, r"reward/(.+)/mean")
    if not domains and not series(d.records, "reward/mean")[0]:
        return "no reward/<domain>/mean or reward/mean keys in metrics.jsonl"
    mean_ax, std_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    colors = _colors(list(domains))
    for dom, key in domains.items():
        steps, mean = series(d.records, key)
        mean_ax.plot(steps, mean, color=colors[dom], label=dom)
        std_steps, std = series(d.records, f"reward/{dom}/std")
        if std_steps:
            std_ax.plot(std_steps, std, color=colors[dom], label=dom)
            if std_steps == steps:
                lo = [m - s for m, s in zip(mean, std, strict=True)]
                hi = [m + s for m, s in zip(mean, std, strict=True)]
                mean_ax.fill_between(steps, lo, hi, color=colors[dom], alpha=0.12)
    for key, ax in (("reward/mean", mean_ax), ("reward/std", std_ax)):
        steps, values = series(d.records, key)
        if steps:
            ax.plot(steps, values, "k--", linewidth=1.2, label="all")
    mean_ax.set(title="reward mean (band: ±std)", xlabel="step", ylim=(-1.05, 1.05))
    std_ax.set(title="reward std within the batch", xlabel="step")
    mean_ax.legend(fontsize=7)
    return None


def plot_success(d: RunData, fig) -> str | None:
    domains = matching(d.records, r"success/(.+)")
    if not domains:
        return "no success/<domain> keys in metrics.jsonl"
    ax = fig.add_subplot(1, 1, 1)
    colors = _colors(list(domains))
    for dom, key in domains.items():
        steps, values = series(d.records, key)
        ax.plot(steps, values, color=colors[dom], alpha=0.25, linewidth=0.8)
        ax.plot(steps, rolling(values), color=colors[dom], label=dom)
    ax.set(title=f"training success per domain (faint: per batch; line: mean of {SMOOTH} steps)",
           xlabel="step", ylabel="success share", ylim=(-0.02, 1.02))
    ax.legend(fontsize=7)
    return None


def plot_labels(d: RunData, fig) -> str | None:
    rows = [(int(r.get("step", i)), r["labels"]) for i, r in enumerate(d.records) if isinstance(r.get("labels"), dict)]
    if not rows:
        return "no labels in metrics.jsonl"
    seen = {name for _, counts in rows for name in counts}
    names = [n for n in LABELS if n in seen] + sorted(seen - set(LABELS))
    steps = [s for s, _ in rows]
    totals = [max(1, sum(c.values())) for _, c in rows]
    shares = [[c.get(n, 0) / t for (_, c), t in zip(rows, totals, strict=True)] for n in names]
    ax = fig.add_subplot(1, 1, 1)
    extra = _colors(names)
    ax.stackplot(steps, shares, labels=names, colors=[LABEL_COLORS.get(n, extra[n]) for n in names])
    ax.set(title="label mix of completions (share per step)", xlabel="step", ylim=(0, 1))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return None


def plot_curriculum(d: RunData, fig) -> str | None:
    keys = matching(d.records, r"curriculum/weight/(.+/[^/]+)")
    if not keys:
        return "no curriculum/weight/<domain>/<bucket> keys in metrics.jsonl"
    by_domain: dict[str, list[str]] = {}
    for pair in keys:
        dom, bucket = pair.rsplit("/", 1)
        by_domain.setdefault(dom, []).append(bucket)
    colors = BUCKET_COLORS
    for ax, (dom, buckets) in zip(_grid(fig, len(by_domain)), sorted(by_domain.items()), strict=True):
        order = [b for b in BUCKETS if b in buckets] + sorted(set(buckets) - set(BUCKETS))
        steps = [int(r.get("step", i)) for i, r in enumerate(d.records)
                 if all(_num(r.get(f"curriculum/weight/{dom}/{b}")) is not None for b in order)]
        ys = [series(d.records, f"curriculum/weight/{dom}/{b}")[1] for b in order]
        if len({len(y) for y in ys}) != 1:  # buckets logged on different steps: lines, not a stack
            for b in order:
                ax.plot(*series(d.records, f"curriculum/weight/{dom}/{b}"), label=b, color=colors.get(b))
        else:
            ax.stackplot(steps, ys, labels=order, colors=[colors.get(b) for b in order])
        ax.set(title=dom, xlabel="step", ylim=(0, 1))
    fig.axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle("curriculum weights per bucket")
    return None


def _bucket_bars(ax, reports: list[tuple[str, dict[str, Any]]]) -> None:
    keys = sorted({k for _, rep in reports for k in rep.get("buckets", {})})
    width = 0.8 / len(reports)
    for j, (name, rep) in enumerate(reports):
        xs, ys, err = [], [], [[], []]
        for i, key in enumerate(keys):
            res = rep.get("buckets", {}).get(key)
            if res is None:
                continue
            rate, (lo, hi) = res["success_rate"], res.get("ci95", [res["success_rate"]] * 2)
            xs.append(i + (j - (len(reports) - 1) / 2) * width)
            ys.append(rate)
            err[0].append(max(0.0, rate - lo))
            err[1].append(max(0.0, hi - rate))
        ax.bar(xs, ys, width=width, yerr=err, capsize=2, label=name)
    ax.set_xticks(range(len(keys)), keys, rotation=45, ha="right", fontsize=7)
    ax.set(ylim=(0, 1.05), ylabel="held-out success (95 % CI)")
    ax.legend(fontsize=7)


def plot_eval_buckets(d: RunData, fig) -> str | None:
    ax = fig.add_subplot(1, 1, 1)
    if d.before_after and "after" in d.before_after:
        reports = [(n, d.before_after[n]) for n in ("before", "after") if d.before_after.get(n)]
        _bucket_bars(ax, reports)
        ax.set_title("held-out success per domain/bucket, before and after GRPO")
    elif d.evals:
        step, rep = d.evals[-1]
        _bucket_bars(ax, [(f"step {step}", rep)])
        ax.set_title(f"held-out success per domain/bucket at step {step}")
    else:
        return "no eval_before_after.json and no eval/step-N.json: no held-out success per bucket"
    return None


def plot_eval_steps(d: RunData, fig) -> str | None:
    if not d.evals:
        return "no eval/step-N.json files (eval.eval_steps not set)"
    domains = sorted({dom for _, rep in d.evals for dom in rep.get("domains", {})})
    ax = fig.add_subplot(1, 1, 1)
    colors = _colors(domains)
    for dom in domains:
        pts = [(s, rep["domains"][dom]) for s, rep in d.evals if dom in rep.get("domains", {})]
        steps = [s for s, _ in pts]
        ax.plot(steps, [r["success_rate"] for _, r in pts], "o-", color=colors[dom], label=dom)
        if all("ci95" in r for _, r in pts):
            ax.fill_between(steps, [r["ci95"][0] for _, r in pts], [r["ci95"][1] for _, r in pts],
                            color=colors[dom], alpha=0.12)
    ax.set(title="held-out success during training (band: 95 % CI)", xlabel="step", ylim=(-0.02, 1.02))
    ax.legend(fontsize=7)
    return None


def plot_reward_buckets(d: RunData, fig) -> str | None:
    keys = matching(d.records, r"reward_bucket/(.+/[^/]+)/mean")
    if not keys:
        return "no reward_bucket/<domain>/<bucket>/mean keys in metrics.jsonl"
    found = {p.rsplit("/", 1)[1] for p in keys}
    buckets = [b for b in BUCKETS if b in found] + sorted(found - set(BUCKETS))
    domains = sorted({p.rsplit("/", 1)[0] for p in keys})
    colors = _colors(domains)
    for ax, bucket in zip(_grid(fig, len(buckets)), buckets, strict=True):
        for dom in domains:
            steps, values = series(d.records, f"reward_bucket/{dom}/{bucket}/mean")
            if steps:
                ax.plot(steps, rolling(values), color=colors[dom], label=dom)
        ax.set(title=bucket, xlabel="step", ylim=(-1.05, 1.05))
    fig.axes[0].legend(fontsize=7)
    fig.suptitle(f"training reward per bucket (mean of {SMOOTH} steps)")
    return None


def plot_lengths(d: RunData, fig) -> str | None:
    mean, maxi = series(d.records, "completion/length_mean"), series(d.records, "completion/length_max")
    trunc = series(d.records, "completion/truncated_share")
    if not (mean[0] or maxi[0] or trunc[0]):
        return "no completion/length_* keys in metrics.jsonl"
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(*mean, label="mean length")
    ax.plot(*maxi, label="max length", alpha=0.6)
    ax.set(title="completion length (tokens) and truncated share", xlabel="step", ylabel="tokens")
    if trunc[0]:
        twin = ax.twinx()
        twin.plot(*trunc, color="tab:red", linestyle=":", label="truncated share")
        twin.set(ylabel="truncated share", ylim=(0, 1))
        twin.legend(fontsize=7, loc="upper right")
    ax.legend(fontsize=7, loc="upper left")
    return None


def plot_learner(d: RunData, fig) -> str | None:
    clip = matching(d.records, r"((?:learner/)?clip_ratio.*)")
    panels = [(title, keys) for title, keys in (
        ("KL to the reference (k3)", ["learner/kl"]),
        ("clip ratio", list(clip.values())),
        ("loss", ["learner/loss"]),
        ("entropy", ["learner/entropy"]),
    ) if any(series(d.records, k)[0] for k in keys)]
    if not panels:
        return "no learner/kl, clip_ratio, learner/loss or learner/entropy keys in metrics.jsonl"
    for ax, (title, keys) in zip(_grid(fig, len(panels), ncols=2), panels, strict=True):
        for key in keys:
            ax.plot(*series(d.records, key), label=key, linewidth=1)
        ax.set(title=title, xlabel="step")
        if len(keys) > 1:
            ax.legend(fontsize=6)
    return None


def plot_time(d: RunData, fig) -> str | None:
    phases = [p for p in PHASES if series(d.records, f"time/{p}")[0]]
    if not phases:
        return "no time/<phase> keys in metrics.jsonl"
    rows = [r for r in d.records if all(_num(r.get(f"time/{p}")) is not None for p in phases)]
    steps = [int(r.get("step", i)) for i, r in enumerate(rows)]
    ax = fig.add_subplot(1, 1, 1)
    ax.stackplot(steps, [[float(r[f"time/{p}"]) for r in rows] for p in phases], labels=phases)
    ax.set(title="time per phase of a step (stacked)", xlabel="step", ylabel="seconds")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return None


def plot_throughput(d: RunData, fig) -> str | None:
    panels = [(k, t) for k, t in (("rollout/tokens_per_second", "rollout tokens per second"),
                                  ("frac_zero_std_groups", "share of groups with zero reward std"),
                                  ("policy_version_lag", "policy version lag of the rollout"))
              if series(d.records, k)[0]]
    if not panels:
        return "no rollout/tokens_per_second, frac_zero_std_groups or policy_version_lag keys"
    for ax, (key, title) in zip(_grid(fig, len(panels)), panels, strict=True):
        ax.plot(*series(d.records, key))
        ax.set(title=title, xlabel="step")
    return None


PLOTS: tuple[tuple[str, str, Callable[[RunData, Any], str | None]], ...] = (
    ("reward", "Reward mean and std per domain", plot_reward),
    ("success", "Training success per domain", plot_success),
    ("labels", "Label mix over steps", plot_labels),
    ("curriculum", "Curriculum weights over steps", plot_curriculum),
    ("eval_buckets", "Held-out success per bucket", plot_eval_buckets),
    ("eval_steps", "Held-out success during training", plot_eval_steps),
    ("reward_buckets", "Training reward per bucket", plot_reward_buckets),
    ("lengths", "Completion length", plot_lengths),
    ("learner", "KL, clip ratio, loss, entropy", plot_learner),
    ("time", "Time per phase", plot_time),
    ("throughput", "Throughput and signal", plot_throughput),
)


def render_plots(data: RunData, out_dir: Path) -> tuple[list[Plot], list[str]]:
    """Write every plot that has data as `<out_dir>/<name>.png`; the others become notes."""
    from matplotlib.figure import Figure  # a bare Figure: no pyplot state, no display backend

    plots, notes = [], []
    for name, title, draw in PLOTS:
        fig = Figure(figsize=(10, 4.2), dpi=100, layout="constrained")
        try:
            why = draw(data, fig)
        except (KeyError, TypeError, ValueError, IndexError) as exc:  # a hand-edited or foreign file
            why = f"malformed data ({exc.__class__.__name__}: {exc})"
        if why is not None:
            notes.append(f"{title}: skipped, {why}")
            continue
        path = out_dir / f"{name}.png"
        fig.savefig(path, format="png")
        plots.append(Plot(name, title, path))
    return plots, notes
