"""Run report: PNG plots of a run's metrics and evaluations, and one self-contained HTML page.

    python -m learner.report runs/tiny-cpu-20250101-120000 [--out DIR]

Reads `metrics.jsonl`, `config.yaml`, `eval_before_after.json` and `eval/step-N.json` of a run
directory (finished or still running) and writes `<out>/*.png` and `<out>/report.html` (default
out: `RUN_DIR/report`). The page embeds its images as base64 data URIs, so the one file works alone
(mail it, open it from anywhere); it loads nothing from the network and runs no script.
A plot whose keys or files are missing is skipped with a note on the page, never an error.
"""

from __future__ import annotations

import argparse
import base64
import html
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from learner.reporting.alerts import collapse_alerts, success_from_eval_reports
from learner.reporting.plots import Plot, RunData, load_run, render_plots

DEFAULT_MARGIN = 0.2  # EvalConfig.collapse_margin's default, for runs whose config does not say
CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; font-size: .9em; margin: .5em 0 1em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; } th:first-child, td:first-child
{ text-align: left; } figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; font-size: .85em; }
.alert { color: #a00; font-weight: 600; } .up { color: #070; } .down { color: #a00; } .note { color: #666; }
#summary { border: 1px solid #ddd; padding: 0 .8em .4em; } #summary h2 { margin-top: .5em; }
.pair { display: flex; gap: .8em; } .pair figure { flex: 1; margin: .3em 0; } .pair table { margin: 0; }
"""
SUMMARY_PLOTS = ("success", "curriculum")  # success per domain (smoothed), the curriculum's bucket mix


def _summary(data: RunData, plots: list[Plot], alerts: list[str]) -> str:
    """The first screen: the before/after table, the alert count, success per domain and the bucket mix."""
    esc = html.escape
    ba = data.before_after
    table = "<p class='note'>no before/after evaluation yet (eval.before_after, or the run is still going)</p>"
    if ba and ba.get("after"):
        try:
            table = eval_table(ba.get("before"), ba["after"])
        except (KeyError, TypeError, ValueError):  # a hand-edited or foreign eval file: the notes say why
            table = "<p class='note'>evaluation table skipped: malformed report (see the notes)</p>"
    alert = (f"<p class='alert'>{len(alerts)} collapse alert(s): see below</p>" if alerts
             else "<p>No collapse alert.</p>")
    by_name = {p.name: p for p in plots}
    figures = "".join(f"<figure>{_img(by_name[n].path, by_name[n].title)}<figcaption>{esc(by_name[n].title)}"
                      "</figcaption></figure>" for n in SUMMARY_PLOTS if n in by_name)
    return (f"<section id='summary'><h2>Summary</h2><div class='pair'><div>{table}</div><div>{alert}</div></div>"
            f"<div class='pair'>{figures}</div></section>")


@dataclass(frozen=True)
class Report:
    """What `build_report` wrote, and why some plots are missing."""

    html_path: Path
    plots: tuple[Plot, ...]
    notes: tuple[str, ...]
    alerts: tuple[str, ...]


def _rate(res: dict[str, Any] | None) -> str:
    if not res:
        return "–"
    lo, hi = res.get("ci95", [math.nan, math.nan])
    return f"{res['success_rate']:.2f} [{lo:.2f}, {hi:.2f}]"


def eval_table(before: dict[str, Any] | None, after: dict[str, Any], section: str = "domains") -> str:
    """HTML table of held-out success per domain (or per domain/bucket), before → after when both given."""
    head = ["", "n", "before", "after", "Δ"] if before else ["", "n", "success [95 % CI]", "pass@k"]
    rows = list(after.get(section, {}).items())
    if section == "domains" and "overall" in after:
        rows.append(("overall", after["overall"]))
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for name, res in rows:
        cells = [html.escape(name), str(res.get("n", ""))]
        if before:
            b = before.get("overall") if name == "overall" else before.get(section, {}).get(name)
            delta = res["success_rate"] - b["success_rate"] if b else None
            cls = "" if delta is None or delta == 0 else (' class="up"' if delta > 0 else ' class="down"')
            cells += [_rate(b), _rate(res)]
            out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells)
                       + f"<td{cls}>{'–' if delta is None else f'{delta:+.2f}'}</td></tr>")
        else:
            cells += [_rate(res), f"{res.get('pass_at_k', math.nan):.2f}"]
            out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "\n".join(out) + "</table>"


def _last_step_table(data: RunData) -> str:
    if not data.records:
        return ""
    last = data.records[-1]
    rows = [(k, v) for k, v in last.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in rows)
    return (f"<details><summary>all numeric values of the last step ({len(rows)} keys)</summary>"
            f"<table>{body}</table></details>")


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _eval_sections(data: RunData) -> list[str]:
    parts = []
    ba = data.before_after
    if ba and ba.get("after"):
        parts.append("<h2>Held-out evaluation, before → after GRPO</h2>")
        parts.append(eval_table(ba.get("before"), ba["after"]))
        parts.append("<details><summary>per domain/bucket</summary>"
                     + eval_table(ba.get("before"), ba["after"], "buckets") + "</details>")
    if data.evals:
        step, rep = data.evals[-1]
        parts.append(f"<h2>Latest in-training evaluation (step {step})</h2>")
        parts.append(eval_table(None, rep))
    return parts


def render_html(data: RunData, plots: list[Plot], notes: list[str], alerts: list[str],
                eval_sections: list[str]) -> str:
    """The whole page: the one-screen summary, then alerts, eval tables, plots (embedded), notes, config.yaml."""
    esc = html.escape
    name = data.run_dir.resolve().name
    steps = [int(r.get("step", i)) for i, r in enumerate(data.records)]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(name)} — pddl-grpo report</title>",
             f"<style>{CSS}</style></head><body>",
             f"<h1>pddl-grpo run report: {esc(name)}</h1>",
             f"<p class='note'>{esc(str(data.run_dir.resolve()))} · generated "
             f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} · "
             + (f"{len(steps)} steps logged ({min(steps)}–{max(steps)})" if steps else "no steps logged")
             + "</p>"]
    parts.append(_summary(data, plots, alerts))
    parts.append("<h2>Collapse alerts</h2>")
    parts.append("".join(f"<p class='alert'>{esc(a)}</p>" for a in alerts) if alerts
                 else "<p>none: no domain fell below its best by more than the margin.</p>")
    parts.extend(eval_sections)
    parts.append("<h2>Plots</h2>")
    for plot in plots:
        if plot.name in SUMMARY_PLOTS:
            continue  # in the summary
        parts.append(f"<figure id='{plot.name}'>{_img(plot.path, plot.title)}"
                     f"<figcaption>{esc(plot.title)}</figcaption></figure>")
    parts.append(_last_step_table(data))
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li class='note'>{esc(n)}</li>" for n in notes) + "</ul>")
    parts.append("<h2>config.yaml</h2>")
    parts.append(f"<pre>{esc(data.config_text)}</pre>" if data.config_text is not None
                 else "<p class='note'>config.yaml missing.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def build_report(run_dir: str | Path, out_dir: str | Path | None = None, margin: float | None = None) -> Report:
    """Plots and report.html of a run directory; `margin` overrides the config's eval.collapse_margin."""
    root = Path(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such run directory")
    out = Path(out_dir) if out_dir is not None else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    data = load_run(root)
    plots, plot_notes = render_plots(data, out)
    if margin is None:
        margin = float((data.config.get("eval") or {}).get("collapse_margin", DEFAULT_MARGIN))
    notes = data.notes + plot_notes
    alerts = collapse_alerts(data.records, success_from_eval_reports(data.evals), margin)
    try:
        sections = _eval_sections(data)
    except (KeyError, TypeError, ValueError) as exc:  # a hand-edited or foreign eval file
        sections = []
        notes.append(f"evaluation tables skipped: malformed report ({exc.__class__.__name__}: {exc})")
    path = out / "report.html"
    path.write_text(render_html(data, plots, notes, alerts, sections), encoding="utf-8")
    return Report(path, tuple(plots), tuple(notes), tuple(alerts))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m learner.report", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", help="run directory (metrics.jsonl, config.yaml, eval files)")
    p.add_argument("--out", help="folder for the PNGs and report.html (default: RUN_DIR/report)")
    p.add_argument("--margin", type=float, help="collapse alert margin (default: the run's eval.collapse_margin)")
    args = p.parse_args(argv)
    try:
        report = build_report(args.run_dir, args.out, args.margin)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in report.notes:
        print(f"note: {note}")
    for alert in report.alerts:
        print(alert)
    print(f"{len(report.plots)} plots; report: {report.html_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
