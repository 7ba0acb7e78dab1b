#!/usr/bin/env bash
# The GPU smoke test: the GPU path's assertions in minutes on a small model (docs/gpu.md, "The GPU smoke test").
#
#   bash scripts/gpu_smoke.sh                 # the tiny model of learner/policy/tiny.py, built locally (no download)
#   bash scripts/gpu_smoke.sh /models/qwen    # or a local HF model directory for the two --smoke runs
#   GPU_SMOKE_OUT=/tmp/smoke bash scripts/gpu_smoke.sh   # where runs and measurements go (default: a new temp dir)
#
# Needs one CUDA GPU (two or more: the disaggregated run gets a whole GPU per role) and `pip install -e
# ".[gpu]"`. Runs, in order: tests/gpu (marker gpu; a missing vllm/unsloth fails instead of skipping),
# the colocated --smoke run (configs/qwen2.5-7b-colocated-1gpu.yaml with a small model) and the
# disaggregated one; after each, no new process may hold the GPU. Prints every number it measures, one
# `name value` per line (also in $GPU_SMOKE_OUT/measurements.txt), and exits 1 at the first failed assertion.
# NOT yet executed on a GPU: the first GPU machine runs it first.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
MODEL="${1:-tiny}"
OUT="${GPU_SMOKE_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/gpu-smoke.XXXXXX")}"
mkdir -p "$OUT"
export GPU_SMOKE_OUT="$OUT" GPU_SMOKE_REQUIRED=1
: > "$OUT/measurements.txt"
t0=$SECONDS

say() { echo "[gpu-smoke] $*"; }
fail() {
  echo "[gpu-smoke] FAILED: $*" >&2
  say "measured so far ($OUT/measurements.txt):"
  cat "$OUT/measurements.txt"
  exit 1
}
measure() { echo "$1 $2" | tee -a "$OUT/measurements.txt"; }

command -v nvidia-smi >/dev/null || fail "nvidia-smi not found: this script needs a CUDA GPU"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
  || fail "torch sees no CUDA device (torch $("$PY" -c 'import torch; print(torch.__version__)'))"
NGPU="$(nvidia-smi -L | grep -c '^GPU ')"
say "output in $OUT; $NGPU GPU(s): $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -n1)"
measure gpu/count "$NGPU"
say "installed set (scripts/check_gpu_extra.sh --installed; a mismatch is reported, not fatal):"
bash scripts/check_gpu_extra.sh --installed | sed 's/^/  /' || say "the installed set differs from the [gpu] pins"

no_new_gpu_processes() {  # $1: what just ended
  if ! "$PY" scripts/gpu_smoke_checks.py no-new-gpu-processes "$OUT/pids-before.txt" --wait 60 \
      | sed "s#^gpu/#gpu/after_${1// /_}/#" | tee -a "$OUT/measurements.txt"; then
    fail "$1 left a process on the GPU"
  fi
}
"$PY" scripts/gpu_smoke_checks.py gpu-pids > "$OUT/pids-before.txt" || fail "nvidia-smi --query-compute-apps failed"

# 1. tests/gpu: logprob gap vLLM vs learner, adapter versions, sleep/wake, padding under Unsloth
say "tests/gpu (log: $OUT/pytest.log)"
if ! timeout 1200 "$PY" -m pytest -q -x -m gpu -p no:cacheprovider -rs tests/gpu > "$OUT/pytest.log" 2>&1; then
  tail -n 40 "$OUT/pytest.log" >&2
  fail "tests/gpu (full log $OUT/pytest.log)"
fi
grep -q " passed" "$OUT/pytest.log" && ! grep -qE "[0-9]+ skipped" "$OUT/pytest.log" \
  || fail "tests/gpu skipped a test: $(grep -E 'SKIPPED|skipped' "$OUT/pytest.log" | head -n 3)"
cat "$OUT/measurements.txt"
no_new_gpu_processes "tests/gpu"

# 2. the colocated and disaggregated --smoke runs on a small model
common=(
  "runs_root=$OUT/runs" "sampler.data_root=$OUT/data" "learner.base_model=$MODEL" "logging.wandb=false"
  "reward.num_workers=2" "cluster.learner_num_cpus=2" "rollout.num_cpus_per_actor=2"
  "rollout.max_new_tokens=64" "learner.max_prompt_length=256" "learner.max_seq_length=512"
  "rollout.max_model_len=512" "rollout.gpu_memory_utilization=0.3" "data.per_domain=20"
)
if [[ "$MODEL" == "tiny" ]]; then  # learner/policy/tiny.py's model from the run's data; head size 64; 2 SFT steps
  common+=("data.sizes=tiny" "data.prompt_style=compact" "tiny_model.hidden=128" "tiny_model.heads=2"
           "sft.enabled=true")
fi
if (( NGPU >= 2 )); then share=1.0; else share=0.5; fi  # one GPU: the two roles' groups share it
colocated=()
disaggregated=("cluster.placement=disaggregated" "cluster.learner_num_gpus=$share"
               "rollout.num_gpus_per_actor=$share" "rollout.enable_sleep_mode=false")

smoke_run() {  # $1: name, $2: --colocated or "", then overrides
  local name="$1" flag="$2"; shift 2
  local t=$SECONDS
  say "recipe_check and the $name --smoke run (log: $OUT/$name.log)"
  "$PY" -m learner.recipe_check configs/qwen2.5-7b-colocated-1gpu.yaml "${common[@]}" "$@" \
    "run_name=smoke-$name" --gpus "$NGPU" > "$OUT/$name.recipe_check.log" 2>&1 \
    || { cat "$OUT/$name.recipe_check.log" >&2; fail "recipe_check refused the $name smoke config"; }
  if ! timeout 1200 "$PY" -m learner.main --config configs/qwen2.5-7b-colocated-1gpu.yaml --smoke \
      "${common[@]}" "$@" "run_name=smoke-$name" > "$OUT/$name.log" 2>&1; then
    tail -n 40 "$OUT/$name.log" >&2
    fail "the $name --smoke run (full log $OUT/$name.log)"
  fi
  local run_dir
  run_dir="$(ls -d "$OUT/runs/smoke-$name"-* | tail -n 1)"
  measure "$name/run_seconds" "$((SECONDS - t))"
  if ! "$PY" scripts/gpu_smoke_checks.py run-metrics "$run_dir" $flag \
      | sed "s#^run/#$name/#; s#^colocated/#$name/#" | tee -a "$OUT/measurements.txt"; then
    fail "the $name run's metrics ($run_dir/metrics.jsonl)"
  fi
  no_new_gpu_processes "the $name run"
}
smoke_run colocated --colocated "${colocated[@]}"
smoke_run disaggregated "" "${disaggregated[@]}"

measure total_seconds "$((SECONDS - t0))"
say "ok: every assertion held; all numbers above and in $OUT/measurements.txt"
