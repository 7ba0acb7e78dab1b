"""report.html renders in headless Chromium and every embedded plot decodes (naturalWidth > 0)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from learner.report import build_report

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1200,900"]
# Added to a copy of the page only (the report itself runs no script): once the page has loaded,
# count the <img> elements that decoded to a real bitmap and write the result on <body>.
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0);
  document.body.setAttribute("data-images", ok.length + "/" + imgs.length);
  document.body.setAttribute("data-widths", ok.map(i => i.naturalWidth).join(","));
});
</script>"""


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium; .ci/run installs it)")
    return path


def synthetic_run(root: Path, steps: int = 8) -> Path:
    """A small run directory: metrics with the loop's main keys, a config, a before/after eval."""
    run = root / "run"
    run.mkdir()
    rows = []
    for s in range(steps):
        rows.append({"step": s, "reward/mean": -1 + 0.2 * s, "reward/std": 0.3, "reward/ferry/mean": -1 + 0.2 * s,
                     "reward/ferry/std": 0.3, "success/ferry": s / steps,
                     "labels": {"success_plans": s, "plan_format_error": steps - s},
                     "curriculum/weight/ferry/easy": 0.7, "curriculum/weight/ferry/medium": 0.25,
                     "curriculum/weight/ferry/hard": 0.05, "completion/length_mean": 30.0 + s,
                     "completion/length_max": 64, "learner/kl": 0.01 * s, "clip_ratio/region_mean": 0.02,
                     "time/rollout": 1.0, "time/learn": 0.5, "time/reward": 0.2})
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (run / "config.yaml").write_text(yaml.safe_dump({"run_name": "chromium-check", "max_steps": steps}))
    res = {"n": 10, "success_rate": 0.4, "ci95": [0.17, 0.69], "pass_at_k": 0.4, "problems": 10}
    rep = {"k": 1, "overall": res, "domains": {"ferry": res}, "buckets": {"ferry/easy": res}}
    (run / "eval_before_after.json").write_text(json.dumps({"before": rep, "after": rep}))
    return run


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    return build_report(synthetic_run(root), root / "out")


def test_report_images_load_in_headless_chromium(report, tmp_path):
    browser = chromium()
    assert len(report.plots) >= 6, report.notes
    page = report.html_path.read_text()
    probe = report.html_path.with_name("probe.html")
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'data-images="(\d+)/(\d+)"', done.stdout)
    assert found is not None, f"probe did not run; stderr: {done.stderr[-2000:]}"
    loaded, total = int(found.group(1)), int(found.group(2))
    assert total == len(report.plots) and loaded == total
    widths = re.search(r'data-widths="([\d,]+)"', done.stdout).group(1).split(",")
    assert all(int(w) >= 500 for w in widths)  # figures are 1000 px wide; a broken image has 0 or an icon's size
    assert "chromium-check" in done.stdout  # the config block rendered too


def test_report_screenshot_is_not_blank(report, tmp_path):
    browser = chromium()
    shot = tmp_path / "shot.png"
    cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
           report.html_path.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[0] == 900 and pixels.shape[1] == 1200
    colours = {tuple(p) for p in (pixels[::7, ::7, :3] * 255).astype(int).reshape(-1, 3).tolist()}
    assert len(colours) > 20  # text, tables and a plot, not a white page


FOLD_PROBE = """<script>
window.addEventListener("load", () => {
  const box = document.getElementById("summary").getBoundingClientRect();
  document.body.setAttribute("data-fold", Math.ceil(box.bottom) + "/" + window.innerHeight);
});
</script>"""


def test_the_summary_is_the_first_screen_at_a_laptop_size(tmp_path):
    """Five domains, a before/after table, the success and curriculum plots: all above the fold at 1280x800."""
    browser = chromium()
    run = synthetic_run(tmp_path)
    res = {"n": 60, "success_rate": 0.6, "ci95": [0.47, 0.72], "pass_at_k": 0.6, "problems": 60}
    rep = {"k": 1, "overall": res, "domains": {d: res for d in ("blocksworld", "delivery", "ferry", "grippers",
                                                                  "spanner")}, "buckets": {"ferry/easy": res}}
    (run / "eval_before_after.json").write_text(json.dumps({"before": rep, "after": rep}))
    report = build_report(run, tmp_path / "out")
    page = report.html_path.read_text()
    assert page.index("id='summary'") < page.index("<h2>Collapse alerts</h2>") < page.index("<h2>Plots</h2>")
    probe = report.html_path.with_name("fold.html")
    probe.write_text(page.replace("</body>", FOLD_PROBE + "</body>"))
    flags = [f for f in CHROMIUM_FLAGS if not f.startswith("--window-size")] + ["--window-size=1280,800"]
    cmd = [browser, *flags, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
           "--dump-dom", probe.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'data-fold="(\d+)/(\d+)"', done.stdout)
    assert found is not None, f"probe did not run; stderr: {done.stderr[-2000:]}"
    bottom, height = int(found.group(1)), int(found.group(2))
    assert 0 < bottom <= height, f"the summary ends at {bottom} px, the first screen is {height} px"
    for title in ("Training success per domain", "Curriculum weights over steps"):
        assert title in page[: page.index("<h2>Collapse alerts</h2>")]
