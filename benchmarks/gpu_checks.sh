#!/usr/bin/env bash
# The checks that need a GPU, as one device run of under 10 minutes: the CUDA tests, then
# the GPU figures of issues 13 and 14 (bench_strategies, bench_tools, bench_convexity on
# cuda). Each step's output goes to $OUT/<step>.log (the device tool's folder; ./gpu-logs
# elsewhere), and a step that fails or runs past its limit does not stop the others.
#
#   on the device machine:     bash benchmarks/gpu_checks.sh
#   here, a quick CPU rehearsal: DEVICE=cpu SMALL=1 bash benchmarks/gpu_checks.sh
#
# The device machine has torch, numpy, scipy, xarray, scikit-learn, tqdm and pytest, not
# the widget libraries: the package runs from this checkout (PYTHONPATH). The demo models
# are trained there unless a folder .cache-demo (a copy of ~/.cache/landscape_widgets,
# ignored by git) is carried with the run.
set -u -o pipefail
out=${OUT:-gpu-logs}
mkdir -p "$out"
device=${DEVICE:-cuda}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
[ -d .cache-demo ] && export LANDSCAPE_WIDGETS_CACHE="$PWD/.cache-demo"
if [ -n "${SMALL:-}" ]; then
    strategies=(--num 5 --repeats 1 --models mlp) tools=(--num 7 --repeats 1) convexity=(--num 3 --steps 4)
else
    strategies=() tools=() convexity=(--point-batch 64)
fi

step() {  # step NAME SECONDS COMMAND...: run it with a time limit, log it, say how it ended
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*"
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
    echo "== $name: exit status ${PIPESTATUS[0]}"
}

step device 30 python3 -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"
step cuda_tests 150 python3 -m pytest -q -rs -k "cuda or gpu" tests/test_evaluation.py tests/test_objective.py \
    tests/test_curvature.py tests/test_sampled.py
step strategies 150 python3 benchmarks/bench_strategies.py --device "$device" "${strategies[@]}"
step tools 150 python3 benchmarks/bench_tools.py --device "$device" --no-dask "${tools[@]}"
step convexity 150 python3 benchmarks/bench_convexity.py --device "$device" "${convexity[@]}"
