#!/usr/bin/env bash
# The molecule table on one GPU: every (row, seed) of benchmarks/molecules.py trains and is tested in
# its own process, all side by side (each is small: a GPU runs many at once), the reference rows in
# one more; then one pass gathers the finished runs into the table.
#   OUT=runs/molecules_gpu ROWS=rigid_fm,kflow_hard,kflow SEEDS=0,1,2 bash benchmarks/molecules_gpu.sh
# Extra arguments go to every run (e.g. train.steps=6000). A run still going at DEADLINE seconds is
# stopped and left out of the table; its run folder resumes with the same command.
set -u
OUT=${OUT:-runs/molecules_gpu}
WORK=${WORK:-$OUT/work}
ROWS=${ROWS:-rigid_fm,kflow_hard,kflow,kflow_2bands,kflow_logit,kflow_window,kflow_own}
SEEDS=${SEEDS:-0,1,2}
DEADLINE=${DEADLINE:-3600}
PY=${PY:-python3}
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:-}:$PWD
mkdir -p "$OUT/logs"
pids=()
timeout "$DEADLINE" $PY benchmarks/molecules.py --rows "${ROWS%%,*}" --seeds 0 --work "$WORK" --references-only "$@" \
    >"$OUT/logs/references.log" 2>&1 &
pids+=($!)
for row in ${ROWS//,/ }; do
    for s in ${SEEDS//,/ }; do
        timeout "$DEADLINE" $PY benchmarks/molecules.py --rows "$row" --seeds "$s" --work "$WORK" --no-references "$@" \
            >"$OUT/logs/$row-$s.log" 2>&1 &
        pids+=($!)
    done
done
for p in "${pids[@]}"; do wait "$p" || echo "a run ended with status $? (logs in $OUT/logs)"; done
$PY benchmarks/molecules.py --rows "$ROWS" --seeds "$SEEDS" --work "$WORK" --gather --out "$OUT/molecules" "$@"
