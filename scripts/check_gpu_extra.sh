#!/usr/bin/env bash
# Does `pip install -e ".[gpu]"` resolve, to the versions CI tests? A dry run against PyPI: no GPU, nothing installed.
#
#   bash scripts/check_gpu_extra.sh                       # resolve .[gpu] as a fresh Linux machine would
#   bash scripts/check_gpu_extra.sh "transformers>=5.20"  # plus extra requirements (shows how a conflict reads)
#   bash scripts/check_gpu_extra.sh --installed           # check this interpreter's installed set instead
#
# pip (a recent one, in a throwaway venv under ${TMPDIR:-/tmp}; the project's environment is never
# touched) resolves `-e .[gpu]` with --dry-run --ignore-installed --report, ignoring this machine's pip
# configuration (a local wheel folder or constraints file would change the answer). Fails naming the
# conflict when pip cannot resolve; then scripts/gpu_extra_report.py checks the set (every requirement
# inside it holds, vllm is .ci/vllm_cpu.sh's version, torch .ci/run's, transformers in the vllm tests'
# range) and prints `name version` of the key packages. Takes 30-80 s here (PyPI metadata only).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
PY="${PYTHON:-python3}"

if [[ "${1:-}" == "--installed" ]]; then
  echo "[gpu-extra] the installed set of $("$PY" -c 'import sys; print(sys.executable)')"
  exec "$PY" scripts/gpu_extra_report.py installed
fi

VENV="${GPU_EXTRA_VENV:-${TMPDIR:-/tmp}/pddl-grpo-gpu-extra-venv}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu-extra.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
t0=$SECONDS

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[gpu-extra] creating $VENV (only pip and packaging go in)"
  "$PY" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -m pip install -q -U "pip>=24" packaging >"$WORK/pip-upgrade.log" 2>&1; then
  tail -n 20 "$WORK/pip-upgrade.log" >&2
  echo "[gpu-extra] FAILED: could not install a recent pip into $VENV (is PyPI reachable?)" >&2
  exit 1
fi

echo "[gpu-extra] pip install --dry-run -e .[gpu] $*"
# PIP_CONFIG_FILE=/dev/null: no pip.conf; find-links / constraints from the environment dropped as well
if ! env -u PIP_FIND_LINKS -u PIP_CONSTRAINT -u PIP_NO_INDEX PIP_CONFIG_FILE=/dev/null \
    "$VENV/bin/python" -m pip install --dry-run --ignore-installed --report "$WORK/report.json" \
    -e ".[gpu]" "$@" >"$WORK/pip.log" 2>&1; then
  echo "[gpu-extra] FAILED: pip cannot resolve .[gpu] $* :" >&2
  "$VENV/bin/python" scripts/gpu_extra_report.py conflict "$WORK/pip.log" | sed 's/^/  /' >&2
  cp "$WORK/pip.log" "${TMPDIR:-/tmp}/check_gpu_extra.pip.log"
  echo "[gpu-extra] pip's full output: ${TMPDIR:-/tmp}/check_gpu_extra.pip.log" >&2
  exit 1
fi
echo "[gpu-extra] resolved in $((SECONDS - t0)) s; the set pip would install:"
if ! "$VENV/bin/python" scripts/gpu_extra_report.py report "$WORK/report.json" | sed 's/^/  /'; then
  echo "[gpu-extra] FAILED: the resolved set has the problems above" >&2
  exit 1
fi
echo "[gpu-extra] ok"
