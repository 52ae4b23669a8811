#!/usr/bin/env bash
# One GPU's acceptance, in under 8 minutes on one H200, with what the GPU machine has (torch,
# transformers, peft, accelerate, pytest; carry the wheels of datasets, dill and multiprocess,
# which the tasks import: see the device tool's README). From the repository's root:
#   bash benchmarks/gpu_acceptance.sh          # results: benchmarks/results/*_gpu_*.json
# 0. each GPU's memory as torch reports it (the capacity steering/training/memory.py's GPU_MEMORY
#    records per kind, and a job's memory check uses);
# 1. the GPU-marked tests (device_map on CUDA, GPU leases with nvidia-smi; with 2 GPUs or
#    more, DDP and FSDP over two of them with NCCL against one GPU);
# 2. a steering training step in fp32, tf32 and bf16 at the Llama-3.2-1B shape (random
#    weights) and the bf16 policy's dtypes (trainable tensors and gradients float32);
# 3. batched evaluation throughput against one prompt at a time (bf16);
# 4. the memory plan's estimate against torch.cuda.max_memory_allocated for steering and
#    full fine-tuning at the 1B shape (bf16, batch 8 x 256);
# 5. a tiny full fine-tune with --do-eval: FSDP over every GPU present (2 or more), else one
#    process on the one GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
run() { echo "+ $*"; "$@"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python -c 'import torch
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i} {p.name}: total_memory {p.total_memory} bytes = {p.total_memory / 2**20:.0f} MiB")'
run python -m pytest -q -rs -p no:cacheprovider -m "gpu or gpus" tests/test_gpu_lease.py \
  tests/test_distributed.py
run python benchmarks/precision_step.py --device cuda --shape llama-3.2-1b --batch 8 --seq-len 256
run python benchmarks/eval_throughput.py --device cuda --shape llama-3.2-1b --dtype bfloat16 \
  --n 32 --repeats 2
run python benchmarks/memory_plan.py --device cuda --shape llama-3.2-1b --dtype bfloat16 \
  --batch 8 --seq-len 256 --methods steering full
tiny=$(mktemp -d)
run python scripts/make_tiny_model.py --arch llama --out "$tiny/m"
run python scripts/prepare_data.py --dataset-name BoolQ --synthetic --scale 0.05 --out "$tiny/BoolQ"
gpus=$(python -c 'import torch; print(torch.cuda.device_count())')
full=(scripts/train.py --model-name "$tiny/m" --dataset-name BoolQ --data-dir "$tiny/BoolQ"
  --method full --lr 1e-4 --bs 4 --max-train-samples 64 --max-eval-samples 16 --do-eval
  --device cuda --no-progress --output-dir "$tiny/full")
if [ "$gpus" -ge 2 ]; then
  run python -m torch.distributed.run --standalone --nproc-per-node "$gpus" "${full[@]}" \
    --sharding fsdp
else
  echo "one GPU: FSDP needs two or more; the same full fine-tune in one process"
  run python "${full[@]}"
fi
