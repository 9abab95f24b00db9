#!/usr/bin/env bash
# Likelihood by band on a GPU in one device call: the rows of docs/benchmarks.md "Likelihood by band"
# (tuned FM, the adopted schedule, the hard path, the recommended staged row) trained at the CPU
# profile (1500 steps, one process each, side by side on the GPU), then bits/dim of N Fashion-MNIST
# test images with dopri5 (benchmarks/likelihood.py), every row's result printed as it lands.
#
#   OUT=/tmp/out bash benchmarks/gpu_likelihood.sh            # on the device (wheels in .whl, data in .gpu_data)
#   DRY=1 bash benchmarks/gpu_likelihood.sh                   # a short dry run on the CPU
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
ROWS=${ROWS:-fm_logit,wavelet2_o50_win_logit,wavelet2,wavelet3_staged}
WORK=${WORK:-/tmp/kflow-gpu-likelihood}
PY=${PY:-python3}
source benchmarks/gpu_env.sh
if [ -n "${DRY:-}" ]; then
  L=(--steps 4 --n 8 --rtol 1e-3 --device cpu); WORK=/tmp/kflow-likelihood-dry
else
  L=(--steps 1500 --n ${N:-1000} --rtol 1e-5 --device cuda)
fi
LH="$PY benchmarks/likelihood.py --work $WORK --train ${L[*]}"
# train (and measure) every row in its own process, side by side: a small UNet leaves the GPU idle
for row in ${ROWS//,/ }; do
  $LH --rows "$row" --out "$OUT/likelihood_$row" > "$OUT/$row.log" 2>&1 &
done
wait
for row in ${ROWS//,/ }; do tail -n 1 "$OUT/$row.log"; done
# one table and the figure from the cells just written
$LH --rows "$ROWS" --out "$OUT/likelihood" --figure "$OUT/likelihood_bands.png" | tail -n 12
