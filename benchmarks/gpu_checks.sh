#!/usr/bin/env bash
# The GPU checks, as one short run on a lent GPU machine (nothing installable there).
#
# Run from the repository root:
#     OUT=/tmp/gpu LIMIT=420 MODELS="resnet50 vit_b_16" EXTRA="--no-peer --repeat 20" bash benchmarks/gpu_checks.sh
#
# * wheels carried in .whl/ (Torch-Pruning 1.6.1, the peer: `pip download --no-deps torch-pruning==1.6.1
#   -d .whl`) are installed into /tmp/site first;
# * the environment (card, driver, torch / timm / transformers / Torch-Pruning versions) goes to env.txt;
# * `benchmarks.latency` runs on cuda in bfloat16 at SPEEDUPS (default 2) for MODELS (default: all),
#   with EXTRA arguments, killed after LIMIT seconds (its JSON and Markdown are rewritten after every model, so a cut run
#   keeps the finished models); the per-layer latency table it built is copied beside them;
# * `benchmarks.kernel_profile` (GPU time by kind of kernel, unpruned vs speedup 2) for PROFILE models
#   (default resnet50 vit_b_16 mobilenet_v2; PROFILE=none skips it), killed after PROFILE_LIMIT seconds.
set -u
OUT=${OUT:-benchmarks/results}
LIMIT=${LIMIT:-420}
SPEEDUPS=${SPEEDUPS:-2}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1 STRUCTPRUNE_LATENCY_CACHE=/tmp/structprune-latency
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  python3 -c "import torch, torchvision, timm, transformers, torch_pruning as tp; print('torch', torch.__version__, \
'torchvision', torchvision.__version__, 'timm', timm.__version__, 'transformers', transformers.__version__, \
'torch-pruning', tp.__version__)"
  echo "cpu cores: $(nproc)"
} 2>&1 | tee "$OUT/env.txt"
# shellcheck disable=SC2086  # MODELS and SPEEDUPS are word lists
timeout "$LIMIT" python3 -m benchmarks.latency --device cuda --dtype bfloat16 --speedups $SPEEDUPS \
  --out "$OUT/latency_cuda" ${MODELS:+--models $MODELS} ${EXTRA:-} 2>&1 | tee "$OUT/latency_cuda.log"
for table in "$STRUCTPRUNE_LATENCY_CACHE"/*.json; do
  [ -e "$table" ] && cp "$table" "$OUT/latency_table_cuda.json"
done
[ "${PROFILE:-}" = none ] || timeout "${PROFILE_LIMIT:-90}" python3 -m benchmarks.kernel_profile --device cuda --dtype bfloat16 \
  --models ${PROFILE:-resnet50 vit_b_16 mobilenet_v2} --out "$OUT/kernel_profile_cuda.json" 2>&1 \
  | grep -v USDT | tee "$OUT/kernel_profile_cuda.log"
exit 0
