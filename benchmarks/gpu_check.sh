#!/usr/bin/env bash
# One device call: inference latency, then both training recipes (and fast-recipe variants) on
# EMNIST. Run from the repo root on a GPU machine with the shared data copied to .gpu_data/.
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 CHARLIB_CACHE_DIR=/tmp/charlib-cache CHARLIB_PROGRESS=0
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
nvidia-smi -L
python3 -c "import torch, onnxruntime; print(torch.__version__, onnxruntime.__version__)"
timeout 120 python3 benchmarks/infer_latency.py --repeats 300 2>&1 | grep -v Warning | tee "$OUT/infer.log"
timeout 400 python3 benchmarks/train_speed.py --data .gpu_data/emnist-byclass \
  --seed-per-class 150 --seed-epochs 2 \
  --fast-variant "compile=True" --fast-variant "stem='imagenet'" \
  --fast-variant "batch_size=1024,lr=0.005" --fast-variant "epochs=25" 2>&1 \
  | grep -v Warning | tee "$OUT/train.log"
cp benchmarks/results/*gpu* "$OUT/" 2>/dev/null
ls "$OUT"
