#!/usr/bin/env bash
# The main job on the built-in phantom: set up (idempotent), then run the demo pipeline.
# Outputs land in ${PCBM_OUT:-out/main}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1 MPLBACKEND=Agg
OUT=${PCBM_OUT:-out/main}
mkdir -p "$OUT"
PCBM=.venv/bin/pcbm
$PCBM --version
echo "== datasets =="
$PCBM data summary phantom:n=64,seed=0 hc18:../shared/data/hc18 --out "$OUT/samples.png"
echo "== the built-in phantom =="
$PCBM data synth --out "$OUT/phantom_set" --n 400 --seed 1 --contact-sheet "$OUT/phantom_contact_sheet.png"
$PCBM data check folder:"$OUT/phantom_set" --json "$OUT/phantom_check.json" --no-progress
