#!/usr/bin/env bash
# Band-localized compute on a GPU, in one device call: the staged DiT-B/2 against FM's on (4, 32, 32)
# latents (training and sampling images/s, FLOPs), then the recommended staged UNet against the tuned
# FM at the GPU profile, with the hybrid (benchmarks/gpu_quality.sh: rows side by side, equal steps, 10k samples).
#
#   OUT=/tmp/out bash benchmarks/gpu_localized.sh            # on the device
#   DRY=1 bash benchmarks/gpu_localized.sh                   # a short dry run on the CPU
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 KFLOW_PROGRESS=0 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PY:-python3}
if [ -n "${DRY:-}" ]; then
  TP="--backbone dit-XS --batch 8 --rounds 1 --steps 1 --sample-n 2"
  Q=(STEPS=20 N=200 NFE=10 DOPRI5=no SET="model.unet.channels=16 model.unet.channel_mult=[1,2,2] model.unet.num_res_blocks=1")
else
  TP="--backbone dit-B --batch 256 --rounds 3 --steps 10 --sample-n 32"
  Q=(TRAIN_S=${TRAIN_S:-240} N=10000 NFE=10,20,50 DOPRI5=no)
fi
echo "== staged DiT vs FM (throughput.py $TP)"
timeout --signal=INT 200 $PY benchmarks/throughput.py $TP --rows fm,wavelet3_stage,wavelet3_staged \
  --sample-rounds 1 --no-sampler-table 2>&1 | tee "$OUT/dit_staged.log" | tail -n 12
echo "== recommended staged UNet and the hybrid vs tuned FM (gpu_quality.sh)"
env "${Q[@]}" ROWS=fm_logit,wavelet3_staged,wavelet3_hybrid OUT="$OUT/quality" PY=$PY bash benchmarks/gpu_quality.sh 2>&1 | tail -n 30
