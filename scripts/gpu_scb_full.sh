#!/usr/bin/env bash
# Paper-scale SCB meta-training (`scb-acrobot` and `scb-cartpole`, `--preset full`)
# on one GPU, inside one call of a lent device machine (at most 10 minutes).
#
# Why both runs at once (by default; RUNS picks): their XLA compilations (about 50 s
# per run for meta-training, more for the transfer test) overlap on the host's cores.
# Whether the GPU work overlaps too is not measured: scb-acrobot alone showed 83-100%
# nvidia-smi "utilisation" (the share of time some kernel runs, not of the chip used;
# 128 small MLPs fill little of an H200). Each run is stopped with SIGINT at DEADLINE_S
# seconds after this script started: `learnenv.checkpoint.run_resumable` then saves the
# generations done so far, so the same `python -m learnenv run NAME --preset full` resumes
# or finishes the run later, here or on a CPU (`--out` pointing at the unpacked folder).
# Python sees SIGINT only between XLA calls, so a run still compiling 40 s later is
# killed; it then keeps its last periodic checkpoint (every 5 generations).
#
# Results come back only through $OUT (at most 8 files): per run one tarball of its
# output folder (results.json, fitness.png, scb.* once finished, checkpoints/ always)
# and its log, plus env.txt (GPU, versions) and gpu.csv (utilisation every 15 s).
#
# Usage, from the repository root, on the device machine:
#   OUT=/tmp/out LEARNENV_LIB=lib bash scripts/gpu_scb_full.sh
# Packages its image lacked (2026-11: evosax, gymnax, gymnasium, farama-notifications,
# flashbax; flax, optax and chex pinned to ours) travel as wheels in .whl/, fetched here
# with `pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
# --platform manylinux2014_x86_64 -d .whl NAME==VERSION` at the versions of our .venv.
# results/scb/README.md ("Paper-scale runs on one GPU") records the run made with it.
# Environment: OUT (where results go), LEARNENV_LIB (the folder holding `learnenv`,
# default lib), DEADLINE_S (default 515), RUNS (default "scb-acrobot scb-cartpole"),
# RUN_DIR (default /tmp/gpu-scb-runs; a run folder already there is resumed),
# EXTRA_ARGS (appended to each `learnenv run`, e.g. "--set num_generations=2" for a test).
set -u
T0=$SECONDS
OUT=${OUT:-/tmp/gpu-scb-out}
LIB=${LEARNENV_LIB:-lib}
DEADLINE_S=${DEADLINE_S:-515}
RUNS=${RUNS-scb-acrobot scb-cartpole}
RUN_DIR=${RUN_DIR:-/tmp/gpu-scb-runs}
mkdir -p "$OUT" "$RUN_DIR"

if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH="$LIB:/tmp/site" PYTHONUNBUFFERED=1
# Two processes share the GPU: take memory as needed instead of 75% each up front.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

{
  date -u +%FT%TZ
  cat "$LIB/../COMMIT" 2>/dev/null || git rev-parse HEAD 2>/dev/null || echo "commit unknown"
  nvidia-smi -L
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  nproc
  python3 -c 'import sys, importlib.metadata as m, jax, learnenv
def version(name):
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return None
print("python", sys.version.split()[0], *(f"{p} {version(p)}" for p in
      ("jax", "jaxlib", "jax-cuda13-plugin", "flax", "optax", "chex", "evosax", "gymnax",
       "flashbax", "numpy")))
print("learnenv from", learnenv.__file__)
print(jax.devices())'
} 2>&1 | tee "$OUT/env.txt"

nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 15 \
  >"$OUT/gpu.csv" 2>&1 &
SMI=$!

one_run() {  # NAME SECONDS: run one experiment, stopped by SIGINT after SECONDS
  local name=$1 limit=$2 start=$SECONDS
  echo "[$(date -u +%T)] $name: start, limit ${limit}s"
  timeout -s INT -k 40 "$limit" python3 -m learnenv run "$name" --preset full \
    --out "$RUN_DIR/$name" ${EXTRA_ARGS:-} >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "[$(date -u +%T)] $name: exit $rc after $((SECONDS - start))s" | tee -a "$OUT/$name.log"
}

# Pack every 30 s too, so that a call cut short still brings the newest checkpoints back.
pack() { for name in $RUNS; do
  [ -d "$RUN_DIR/$name" ] && tar czf "$OUT/$name.tar.gz.part" -C "$RUN_DIR" "$name" \
    && mv "$OUT/$name.tar.gz.part" "$OUT/$name.tar.gz"; done; }
( while sleep 30; do pack; done ) &
PACKER=$!

LEFT=$((DEADLINE_S - (SECONDS - T0)))
PIDS=()
for name in $RUNS; do one_run "$name" "$LEFT" & PIDS+=($!); done
[ ${#PIDS[@]} -gt 0 ] && wait "${PIDS[@]}"
kill "$SMI" "$PACKER" 2>/dev/null
wait "$PACKER" 2>/dev/null
rm -f "$OUT"/*.part
pack

for name in $RUNS; do
  [ -d "$RUN_DIR/$name" ] || continue
  python3 - "$RUN_DIR/$name" <<'EOF'
import json, pathlib, sys
run = pathlib.Path(sys.argv[1])
states = sorted((run / "checkpoints").glob("state-*.json"))
extra = json.loads(states[-1].read_text()).get("extra", {}) if states else {}
done = (run / "results.json").exists()
print(f"{run.name}: generations {extra.get('iteration')}/{extra.get('num_iterations')}, "
      f"meta-training {extra.get('wall_clock_s', 0):.0f} s, results.json {'yes' if done else 'no'}")
EOF
done
ls -la "$OUT"
echo "total $((SECONDS - T0))s"
