#!/usr/bin/env bash
# One device session (the lent H100/H200 has no network): CUDA tests, then DiT throughput/MFU.
# Wheels the image lacks travel in .whl (PyWavelets, diffusers). Every part has its own time limit
# and writes its log to $OUT as it goes, so a cut-off session still returns what it finished.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 KFLOW_PROGRESS=0 PYTHONPATH=$PWD
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PWD:/tmp/site
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
  nproc; } 2>&1 | tee "$OUT/env.txt"
t0=$(date +%s)
part() {  # part NAME SECONDS CMD...: run with a time limit, log to $OUT/NAME.log
  local name=$1 secs=$2; shift 2
  echo "== $name (limit ${secs}s, at $(( $(date +%s) - t0 ))s)"
  timeout --signal=INT --kill-after=10 "$secs" "$@" > "$OUT/$name.log" 2>&1
  echo "   exit $? after $(( $(date +%s) - t0 ))s"; tail -n 25 "$OUT/$name.log"
}
part cuda_tests 200 python3 -m pytest -q -m cuda tests/cuda -p no:cacheprovider --timeout 150 -rA
TP="python3 benchmarks/throughput.py --batch 256 --sample-n 32 --sample-rounds 1 --no-sampler-table"
part tp_dit_B_eager 80 $TP --backbone dit-B --rounds 3 --steps 10 --profile fm,wavelet3
part tp_dit_B_compile 120 $TP --backbone dit-B --rounds 3 --steps 10 --compile
part tp_dit_L_eager 75 $TP --backbone dit-L --rounds 2 --steps 8 --batch 128
part tp_dit_L_compile 90 $TP --backbone dit-L --rounds 2 --steps 8 --batch 128 --compile
