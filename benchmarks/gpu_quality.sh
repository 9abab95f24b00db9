#!/usr/bin/env bash
# The GPU profile of benchmarks/quality.py in one device call of a few minutes.
#
# A UNet of this size at batch 128 keeps one GPU mostly idle (kernel launches dominate), so the rows
# train side by side, one process each, on the same GPU. A short probe of all rows together measures
# their common speed; the step count is then the largest multiple of 1000 (at most 20000) that fits
# TRAIN_S seconds, the same for every row (equal compute). Each row then samples N images at NFE
# 10/20/50 and with dopri5 from the same noise; a last pass joins the cells into one table.
#
#   OUT=/tmp/out bash benchmarks/gpu_quality.sh                 # on the device (wheels in .whl, data in .gpu_data)
#   STEPS=200 N=500 NFE=10 DOPRI5=no bash benchmarks/gpu_quality.sh   # a dry run on CPU (add SET=... for a
#                                                                        smaller UNet, see docs/benchmarks.md)
# Found on the H200 lent once: four processes ran at about 13 steps/s each (not profiled), so 20k steps
# need about 25 minutes of device time this way. (env.txt's nproc reads OMP_NUM_THREADS, not the cores.)
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
ROWS=${ROWS:-fm,fm_logit,wavelet2,wavelet2_o50_win_logit}
N=${N:-10000}
NFE=${NFE:-10,20,50}
DOPRI5=${DOPRI5:-yes}
TRAIN_S=${TRAIN_S:-270}
PROBE=${PROBE:-400}
STEPS=${STEPS:-}  # set: skip the probe
MAX_STEPS=${MAX_STEPS:-20000}
WORK=${WORK:-/tmp/kflow-gpu-quality}
SET=${SET:-}  # config overrides for every row, e.g. for a dry run on CPU
PY=${PY:-python3}
source benchmarks/gpu_env.sh
export KFLOW_CACHE=$WORK/cache
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null
  $PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
  nproc; } 2>&1 | tee "$OUT/env.txt"
t0=$(date +%s)
Q="$PY benchmarks/quality.py --profile gpu --classifier classifiers/fashion_mnist.safetensors --sample-batch 2500 --set $SET"
# the reference features once, before the rows race for the cache
PYTHONPATH=benchmarks${PYTHONPATH:+:$PYTHONPATH} $PY -c "import toolkit; toolkit.setup('classifiers/fashion_mnist.safetensors')" \
  > "$OUT/setup.log" 2>&1 || { tail -5 "$OUT/setup.log"; exit 1; }
echo "setup done at $(( $(date +%s) - t0 ))s"

parallel() {  # parallel TAG ARGS...: every row in its own process, wait for all, fail if any failed
  local tag=$1; shift; local pids=() row rc=0
  for row in ${ROWS//,/ }; do
    $Q --rows "$row" "$@" > "$OUT/$tag-$row.log" 2>&1 & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  for row in ${ROWS//,/ }; do echo "-- $tag $row"; tail -n 3 "$OUT/$tag-$row.log"; done
  return $rc
}

if [ -z "$STEPS" ]; then
  parallel probe --train-only --steps "$PROBE" --work "$WORK/probe" || exit 1
  # images/s of the slowest row while all ran together (the median of its logged windows)
  STEPS=$($PY - "$OUT" "$ROWS" "$TRAIN_S" "$MAX_STEPS" <<'EOF'
import json, sys
out, rows, budget, most = sys.argv[1], sys.argv[2].split(","), float(sys.argv[3]), int(sys.argv[4])
ips = [json.loads(open(f"{out}/probe-{r}.log").read().strip().splitlines()[-1])["train_images_per_s"] for r in rows]
steps = int(min(ips) / 128 * budget) // 1000 * 1000
print(max(min(1000, most), min(most, steps)))
EOF
)
  echo "probe done at $(( $(date +%s) - t0 ))s: $STEPS steps fit ${TRAIN_S}s"
fi
echo "$STEPS" > "$OUT/steps.txt"
parallel row --steps "$STEPS" --n "$N" --nfe "$NFE" --dopri5 "$DOPRI5" --work "$WORK/runs"
echo "rows done at $(( $(date +%s) - t0 ))s"
$Q --rows "$ROWS" --steps "$STEPS" --n "$N" --nfe "$NFE" --dopri5 "$DOPRI5" --work "$WORK/runs" \
  --out "$OUT/quality_gpu" > "$OUT/table.log" 2>&1
tail -n 30 "$OUT/table.log"
for d in "$WORK"/runs/*; do  # the cells and training logs come back; the checkpoints stay
  mkdir -p "$OUT/runs/$(basename "$d")" && cp "$d"/quality-*.json "$d"/log.csv "$d"/config.json "$OUT/runs/$(basename "$d")/" 2>/dev/null
done
echo "all done at $(( $(date +%s) - t0 ))s"
