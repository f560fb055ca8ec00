#!/usr/bin/env bash
# The main job on the built-in phantom: set up (idempotent), then run the demo pipeline.
# Outputs land in ${PCBM_OUT:-out/main}; a re-run replaces the outputs of the previous run there (--overwrite),
# and nothing else in that folder.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1 MPLBACKEND=Agg
OUT=${PCBM_OUT:-out/main}
mkdir -p "$OUT"
PCBM=.venv/bin/pcbm
HC18=${PCBM_HC18:-../shared/data/hc18}   # real HC18 data beside the checkout; its steps are skipped without it
if [ -f "$HC18/pixel_size_and_hc.csv" ]; then HAVE_HC18=1; else HAVE_HC18=0; echo "note: no HC18 data at $HC18; skipping its steps"; fi
$PCBM --version
echo "== datasets =="
$PCBM data summary phantom:n=64,seed=0 $([ $HAVE_HC18 = 1 ] && echo "hc18:$HC18") --out "$OUT/samples.png" --overwrite
echo "== the built-in phantom =="
$PCBM data synth --out "$OUT/phantom_set" --n 400 --seed 1 --contact-sheet "$OUT/phantom_contact_sheet.png" --overwrite
$PCBM data check folder:"$OUT/phantom_set" --json "$OUT/phantom_check.json" --overwrite --no-progress
echo "== train a small PCBM briefly on the phantom (CPU, a few minutes) =="
$PCBM train --data "phantom:n=4000,seed=0,style=mix" --model tiny --size 128 --mode sequential \
  --max-steps ${PCBM_MAIN_STEPS:-300} --batch-size 16 --refit-decision 400 --seed 0 --out "$OUT/run" --overwrite
echo "== evaluate it on a held-out phantom seed =="
$PCBM eval "$OUT/run" --data "phantom:n=200,seed=123,style=mix" --json "$OUT/eval_phantom.json" --overwrite
echo "== the shipped default model: evaluate on HC18's subject-level validation split, predict =="
if [ $HAVE_HC18 = 1 ]; then $PCBM eval default --data "hc18:$HC18?split=val" --json "$OUT/default_eval_hc18.json" --overwrite; fi
$PCBM predict default "$OUT"/phantom_set/images/phantom-1-0.png "$OUT"/phantom_set/images/phantom-1-3.png \
  | tee "$OUT/predictions.jsonl"
if [ $HAVE_HC18 = 1 ]; then
  $PCBM predict default "$HC18/images/019_HC.png" --pixel-spacing 0.1180 | tee -a "$OUT/predictions.jsonl"
fi
echo "== explain: concept reports and an intervention =="
TT=$(awk -F, 'NR>1 && $2=="trans_thalamic" && $3=="1" {print $1; exit}' "$OUT/phantom_set/labels.csv")
TT_SPACING=$(awk -F, -v img="$TT" 'NR>1 && $1==img {print $4}' "$OUT/phantom_set/labels.csv")
$PCBM report default "$OUT/phantom_set/images/$TT" --pixel-spacing "$TT_SPACING" --out "$OUT/reports/phantom" --overwrite
if [ $HAVE_HC18 = 1 ]; then $PCBM report default "$HC18/images/019_HC.png" --out "$OUT/reports/hc18" --overwrite; fi
$PCBM intervene default "$OUT/phantom_set/images/$TT" --set cerebellum_visible=1
echo "done: see $OUT/ (samples.png, phantom_contact_sheet.png, reports/*/index.html, predictions.jsonl)"
