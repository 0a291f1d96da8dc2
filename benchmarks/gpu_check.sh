#!/usr/bin/env bash
# GPU checks, run from the repository root on a machine with an NVIDIA GPU (and, for the
# TensorRT rows, `pip install 'streamdenoise[tensorrt]'`). Writes at most 7 files into
# $OUT (default benchmarks/results/gpu): the card, the CUDA tests, the model-only bench
# (per frame, and batched on GPU-resident inputs) and the end-to-end pipeline bench.
# With wheels in .whl/ (e.g. PyAV for a machine without it) they are installed first.
# STAGES picks stages (default: all): gpu-tests bench-model bench-batch bench-pipeline
# compile fast-tests slow-tests demo. MODELS picks the models benched and demoed (default:
# temporal-gpu, the recurrent tier with its motion search in the graph: nothing host-bound);
# bench-model also measures FFmpeg's nlmeans on the host CPU in the same run (the speed ratio
# against it).
set -u -o pipefail
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site:$PWD
fi
SD="python3 -m streamdenoise"
{
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"
    python3 -c "import tensorrt; print('tensorrt', tensorrt.__version__)" 2>&1 | tail -1
    nproc; lscpu | grep -m1 'Model name'
} > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"
STAGES=${STAGES:-gpu-tests bench-model bench-batch bench-pipeline compile fast-tests slow-tests demo}
step() {  # step NAME SECONDS CMD...: run with a time limit, log to $OUT/all.log
    local name=$1 limit=$2; shift 2
    [[ " $STAGES " == *" $name "* ]] || return 0
    echo "=== $name: $*" | tee -a "$OUT/all.log"
    timeout "$limit" "$@" 2>&1 | tee -a "$OUT/all.log" | tail -25
    echo "=== $name: exit ${PIPESTATUS[0]}" | tee -a "$OUT/all.log"
}
step gpu-tests 120 python3 -m pytest -q -p no:cacheprovider -m gpu -rs \
    tests/test_backend_parity.py tests/test_train_smoke.py --junitxml="$OUT/pytest_gpu.xml"
MODELS=${MODELS:-temporal-gpu}
for MODEL in $MODELS; do
    # README command (1)'s job on the default device (CUDA fp16 when torch sees the GPU)
    step demo 60 $SD run demo --model "$MODEL" -o /tmp/demo_denoised.mp4 \
        --stats-json "$OUT/demo_stats_$MODEL.json" -q
    step bench-model 150 $SD bench --model "$MODEL" --backends torch,tensorrt,nlmeans \
        --sizes 1280x720,1920x1080 --precision fp32,fp16,uint8 --seconds 6 \
        --json "$OUT/bench_model_$MODEL.json"
    step bench-batch 120 $SD bench --model "$MODEL" --backends torch,tensorrt \
        --sizes 1280x720,1920x1080 --precision fp16 --batch "${BATCH:-8}" --seconds 6 \
        --json "$OUT/bench_batch_$MODEL.json"
    step bench-pipeline 150 $SD bench --model "$MODEL" --pipeline --backends torch \
        --precision fp16 --sizes 1280x720,1920x1080 --preset ultrafast,veryfast --seconds 8 \
        --json "$OUT/bench_pipeline_$MODEL.json"
done
# torch eager vs torch.compile (inductor, CUDA graphs) per model, per stream and batched
step compile 240 python3 benchmarks/compile_check.py --models "${MODELS// /,}" \
    --sizes 1920x1080 --batch 1,8 --seconds 4 --out "$OUT/compile"
step fast-tests 150 python3 -m pytest -q -p no:cacheprovider -m "not slow and not rtsp" \
    tests
step slow-tests 150 python3 -m pytest -q -p no:cacheprovider -m "slow and not rtsp" tests
