#!/usr/bin/env bash
# Leave-one-centre-out over the four African centres: the "real" stage of scripts/train_default.sh with one
# centre's images left out of training (`african:…?exclude_centre=C`), at a budget of STEPS steps (the
# shipped stage ran 420 planned / ~350 done), then bench/bench_loco.py scores each fold on its own centre.
#
#   bash bench/run_loco.sh [STEPS] [OUT]        # default 100 steps, runs/loco; resumable (finished folds are skipped)
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${1:-100}"
OUT="${2:-runs/loco}"
PCBM="${PCBM:-.venv/bin/pcbm}"
D="${DATA_DIR:-../shared/data}"
INIT="${INIT:-runs/final_before_real}"  # the model the real stage started from (scripts/train_default.sh's OUT/final)
[[ -f "$INIT/model.pt" ]] || { echo "no $INIT/model.pt: give INIT=the real stage's starting run (OUT/final of scripts/train_default.sh)" >&2; exit 2; }
export HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1 MPLBACKEND=Agg
for C in Algeria Egypt Ghana Uganda; do
  dir="$OUT/fold_$C"
  if [[ -f "$dir/model.pt" ]]; then echo "skip $dir (done)"; continue; fi
  if [[ -d "$dir.partial" ]]; then $PCBM train --resume "$dir"; continue; fi
  $PCBM train --init "$INIT" --data "phantom:n=40000,seed=21,style=mix@1.5" \
    --data "phantom:n=20000,seed=22,style=random@0.5" --data "hc18:$D/hc18@0.5" \
    --data "alzubaidi:$D/alzubaidi_brain?val_fraction=0.3@0.25" --data "fetal_planes_db:$D/fpdb_subset?val_fraction=0.3@1" \
    --data "african:$D/african?val_fraction=0.3&exclude_centre=$C@1" --lr 3e-4 --batch-size 16 --max-steps "$STEPS" \
    --checkpoint-every 50 --epoch-size 4000 --epochs 100 --seed 32 --eval-limit 8 --refit-decision 600 \
    --refit-weights 1,1,0.1,0.3,3,3 --quiet --out "$dir"
done
