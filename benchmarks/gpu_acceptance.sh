#!/usr/bin/env bash
# One GPU's acceptance, in under 8 minutes on one H200, with what the GPU machine has (torch,
# transformers, peft, accelerate, pytest; carry the wheels of datasets, dill and multiprocess,
# which the tasks import: see the device tool's README). From the repository's root:
#   bash benchmarks/gpu_acceptance.sh          # results: benchmarks/results/*_gpu_*.json
# 1. the GPU-marked tests (device_map on CUDA, GPU leases with nvidia-smi);
# 2. a steering training step in fp32, tf32 and bf16 at the Llama-3.2-1B shape (random
#    weights) and the bf16 policy's dtypes (trainable tensors and gradients float32);
# 3. batched evaluation throughput against one prompt at a time (bf16);
# 4. the memory plan's estimate against torch.cuda.max_memory_allocated for steering and
#    full fine-tuning at the 1B shape (bf16, batch 8 x 256).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
run() { echo "+ $*"; "$@"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
run python -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu_lease.py tests/test_distributed.py
run python benchmarks/precision_step.py --device cuda --shape llama-3.2-1b --batch 8 --seq-len 256
run python benchmarks/eval_throughput.py --device cuda --shape llama-3.2-1b --dtype bfloat16 \
  --n 32 --repeats 2
run python benchmarks/memory_plan.py --device cuda --shape llama-3.2-1b --dtype bfloat16 \
  --batch 8 --seq-len 256 --methods steering full
