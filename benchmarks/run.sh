#!/usr/bin/env bash
# Every benchmark row, by the exact commands whose results benchmarks/README.md records.
#   bash benchmarks/run.sh cpu    # ~6 min on 2 cores; peak_memory needs ~16 GiB of free RAM
#   bash benchmarks/run.sh gpu    # one CUDA GPU with >= 40 GiB (Llama-3.1-8B shape in bf16)
# Results land in benchmarks/results/<question>_<cpu|gpu>_<shape>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
kind="${1:?say cpu or gpu}"
run() { echo "+ python $*"; python "$@"; }
# logits_step.py needs a real model and real ARC-Challenge rows (project-relative defaults)
MODEL_DIR="${MODEL_DIR:-.cache/models/smollm2-135m}"
ARC_DIR="${ARC_DIR:-.cache/data/ARC_Challenge}"
logits_step() {
  if [[ ! -f "$MODEL_DIR/config.json" || ! -d "$ARC_DIR" ]]; then
    echo "skipping logits_step.py: set MODEL_DIR to SmolLM2-135M-Instruct's HF directory" \
      "(now $MODEL_DIR) and ARC_DIR to ARC-Challenge's data (now $ARC_DIR)" >&2
    return 0
  fi
  run benchmarks/logits_step.py --model "$MODEL_DIR" --arc-dir "$ARC_DIR" "$@"
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
  OMP_NUM_THREADS=1 logits_step --device cpu --shapes smollm2 --repeats 3
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
  logits_step --device cuda --dtype bfloat16 --shapes llama-3.2-1b smollm2
  ;;
*)
  echo "say cpu or gpu, not '$kind'" >&2
  exit 2
  ;;
esac
