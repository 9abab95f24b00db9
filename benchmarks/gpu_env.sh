# Sourced by the device scripts: the wheels shipped in .whl (installed into /tmp/site when there
# are any, the device having no registry) and the datasets in .gpu_data.
export PYTHONUNBUFFERED=1 KFLOW_PROGRESS=0 PYTHONPATH=$PWD OMP_NUM_THREADS=2
if ls .whl/*.whl >/dev/null 2>&1; then
  ${PY:-python3} -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PWD:/tmp/site
fi
[ -d .gpu_data ] && export KFLOW_DATA=$PWD/.gpu_data
