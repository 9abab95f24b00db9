#!/bin/bash
# heavy jobs one after another (2 cores)
cd /work/main
while pgrep -f "likelihood.py --rows fm_logit" >/dev/null; do sleep 10; done
P=/work/main/.venv/bin/python
$P benchmarks/localized.py --rows fm_logit,wavelet3_hybrid --n 2000 --fm-nfe 20 --nfe 20,50 --out docs/results/hybrid_cpu_1500 > logs/hybrid_fmnist.log 2>&1
cd benchmarks
D="--dataset digits32 --work ../runs/digits32 --classifier ../classifiers/digits32.safetensors --n 2000"
$P localized.py $D --rows fm_logit,wavelet3_hybrid --seed 0 --steps 3000 --fm-nfe 20,50 --nfe 20,50 --out ../docs/results/digits32_hybrid_3000_seed0 > ../logs/hybrid_d0.log 2>&1
$P localized.py $D --rows fm_logit,wavelet3_hybrid --seed 1 --steps 3000 --fm-nfe 20,50 --nfe 20,50 --out ../docs/results/digits32_hybrid_3000_seed1 > ../logs/hybrid_d1.log 2>&1
echo done > ../logs/queue1.done
