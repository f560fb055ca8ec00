#!/usr/bin/env bash
# Train the shipped default model (pcbm/models/weights/) — the one documented command.
#
#   scripts/train_default.sh [HC18_DIR] [OUT_DIR]
#
# Data: the phantom (styles mixed, seed 0, 40 000 scenes) and HC18 (HC18_DIR, default
# ../shared/data/hc18), drawn 2:1; subject-level 80/20 split of each (seed 0). Deterministic given
# the seed on CPU; on a GPU (accelerator auto) cuDNN kernels may differ in the last bits.
# About 6-8 minutes on one H100 with 15 data workers; on a 2-core CPU it is far slower (hours):
# lower --max-steps there, or see MODEL_CARD.md.
set -euo pipefail
HC18="${1:-../shared/data/hc18}"
OUT="${2:-runs/default}"
PCBM="${PCBM:-pcbm}"
PRECISION="${PRECISION:-32-true}"   # bf16-mixed on a GPU
WORKERS=${WORKERS:+--workers $WORKERS}  # DataLoader workers (default: CPU count - 1, at most 8)
$PCBM train \
  --data "phantom:n=40000,seed=0,style=mix" \
  --data "hc18:${HC18}@0.5" \
  --model small --mode sequential --size 256 \
  --max-steps 4400 --epochs 100 --epoch-size 8000 --batch-size 32 --lr 2e-3 --seed 0 \
  --refit-decision 2000 --refit-weights 1,0.1 \
  --accelerator auto --precision "$PRECISION" --max-time-min 7.8 --quiet $WORKERS \
  --out "$OUT"
