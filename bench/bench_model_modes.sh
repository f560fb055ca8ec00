#!/usr/bin/env bash
# Train the three PCBM modes and the concept-free baseline side by side, on the phantom alone, at the
# same budget (the sequential one doubles as the sim-to-real model: evaluate it on HC18).
#   bench/bench_model_modes.sh OUT_DIR [STEPS] [WORKERS_PER_RUN]
# Then: python bench/bench_model.py modes OUT_DIR   (evaluates them on held-out phantom data)
set -euo pipefail
OUT="$1"; STEPS="${2:-1000}"; W="${3:-3}"
PCBM="${PCBM:-pcbm}"; PRECISION="${PRECISION:-auto}"
run() {  # name model mode
  $PCBM train --data "phantom:n=20000,seed=0,style=mix" --model "$2" --mode "$3" --size 256 \
    --max-steps "$STEPS" --epochs 100 --epoch-size 8000 --batch-size 32 --lr 2e-3 --seed 0 \
    --accelerator auto --precision "$PRECISION" --max-time-min 5 --workers "$W" --quiet --out "$OUT/$1" \
    > "$OUT/$1.log" 2>&1
}
mkdir -p "$OUT"
run sequential small sequential & run independent small independent & run joint small joint & run baseline baseline sequential &
wait
