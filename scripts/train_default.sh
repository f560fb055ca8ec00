#!/usr/bin/env bash
# Train the shipped default model (pcbm/models/weights/) — the one documented command.
#
#   scripts/train_default.sh [HC18_DIR] [OUT_DIR]
#
# Data: the phantom (styles mixed, 40 000 scenes; a new seed per stage) and HC18 (HC18_DIR, default
# ../shared/data/hc18), drawn 2:1; subject-level 80/20 split of each (split seed 0, `--split-seed`,
# whatever the stage's --seed, so HC18's validation subjects never enter training). The shipped
# weights were trained before that fix: their stages 2-8 split by their own --seed, so HC18
# validation subjects were among their training images (see the model card); a re-run is clean.
#
# Eight stages, each a `pcbm train` (stage 1 from random weights, stages 2-8 `--init` from the one
# before at a lower peak learning rate; the decisions of stages 1 and 4 are refitted before the next
# stage; stage 5 adds head planes under randomised scanner styles, `style=random,planes=head`;
# stages 6-8 draw randomised-style heads : randomised-style scenes of every plane : mixed styles :
# HC18 = 2 : 1 : 1.5 : 0.5), then the decision is refitted on predicted concepts (mixed and
# randomised styles) with
# HC18 down-weighted (its every image is labelled trans-thalamic, but its inner structures were
# never labelled, so its plane label would otherwise teach "any head -> trans-thalamic").
# The stages exist because one command on the lent GPU may run 10 minutes at most: about 8 + 5 + 5
# + 3 minutes on one H100 with 15 data workers (~300-360 images/s) for stages 1-4, 73 minutes of a
# 2-core CPU for stage 5 (no GPU that session), 6 + 7 + 7 minutes on one H100 for stages 6-8
# (~363-379 images/s), and the final refit about 7 minutes on a 2-core CPU. On a 2-core CPU the training takes many hours: lower the --max-steps there.
# The shipped weights' stage 1 was stopped by --max-time-min at step 4250 of 4400, and read HC18
# from a copy at half resolution; stages 2-4 from a copy at 256 px on the long side (pixel size
# scaled to match). Both only change how fast images load: the model sees 256 px either way.
#
# Resumable: every finished step leaves .step_done in its --out folder, and a re-run skips those steps, so the
# whole recipe (about 45 minutes of one H100) can be spread over several shorter sessions or calls; a
# train step that was interrupted (its STEP.partial/ folder is there) continues from its last checkpoint
# (`pcbm train --resume`). The final model is written to OUT_DIR/final (`pcbm refit` does not write into a
# non-empty folder). Delete OUT_DIR (or a step's folder and its .partial) to start over.
# Stage "real" (issue 32, 2-core CPU, about an hour): the model meets real scans of every plane family —
# the FETAL_PLANES_DB subset and the African centres (plane labels only; brain images of the African set a
# head-group label), with Alzubaidi's brains, HC18 and the phantom kept in the mix — fine-tuned from
# `final` with the structures each plane label implies present / absent (pcbm.concepts.IMPLIED_BY_GROUP)
# as image-level labels, its decision refitted on all of them, then calibrated (temperature and the
# out-of-distribution score) with real frames among the in-distribution ones. 30 % of the subjects of each
# real set (stratified by plane group / centre, split seed 0) never enter it: bench/bench_real_planes.py
# scores them (stages real_keep1/2 below follow it). NOT SHIPPED YET: on 2026-12-07 this stage (2-core CPU, 420 steps, 53 min) lifted held-out
# real plane-group macro-F1 from 0.10 to 0.62 but cost phantom plane F1 (0.960 -> 0.927 on the benchmark
# seed), below the 0.96 the default must keep (bench/RESULTS.md, "Real scans of every plane family"); the
# shipped default is still OUT_DIR/final.
set -euo pipefail
HC18="${1:-../shared/data/hc18}"
OUT="${2:-runs/default}"
DATA_DIR="$(dirname "$HC18")"
ALZ="${ALZ:-$DATA_DIR/alzubaidi_brain}"
FPDB="${FPDB:-$DATA_DIR/fpdb_subset}"
AFRICAN="${AFRICAN:-$DATA_DIR/african}"
PCBM="${PCBM:-pcbm}"
PRECISION="${PRECISION:-auto}"   # auto: bf16-mixed where the GPU or CPU computes bf16 natively
WORKERS=${WORKERS:+--workers $WORKERS}  # DataLoader workers (default: CPU count - 1, at most 8)
step() {  # step COMMAND…: run a pcbm command unless its --out folder holds a finished step
  local dir="" prev="" a
  for a in "$@"; do [[ $prev == --out ]] && dir=$a; prev=$a; done
  [[ -n $dir ]] || { echo "step: no --out in: $*" >&2; return 2; }
  if [[ -f "$dir/.step_done" ]]; then echo "skip $dir (done)"; return; fi
  if [[ -d "$dir.partial" ]]; then  # an interrupted `pcbm train`: continue it with its saved config
    local pre=()
    for a in "$@"; do [[ $a == train ]] && break; pre+=("$a"); done
    "${pre[@]}" train --resume "$dir" $WORKERS
  else
    "$@"
  fi
  mkdir -p "$dir" && touch "$dir/.step_done"
}
common=(--data "hc18:${HC18}@0.5" --mode sequential --epochs 100 --epoch-size 8000 --batch-size 32
        --accelerator auto --precision "$PRECISION" --quiet)
step $PCBM train --data "phantom:n=40000,seed=0,style=mix" "${common[@]}" $WORKERS --model small --size 256 \
  --max-steps 4400 --lr 2e-3 --seed 0 --max-time-min 7.8 --out "$OUT/stage1"
step $PCBM refit "$OUT/stage1" --data "phantom:n=40000,seed=0,style=mix" --data "hc18:${HC18}?split=train" \
  --weights 1,0.1 --per-source 1500 --out "$OUT/stage1r"
step $PCBM train --data "phantom:n=40000,seed=1,style=mix" "${common[@]}" $WORKERS --init "$OUT/stage1r" \
  --max-steps 3300 --lr 1e-3 --seed 1 --max-time-min 6.9 --out "$OUT/stage2"
step $PCBM train --data "phantom:n=40000,seed=2,style=mix" "${common[@]}" $WORKERS --init "$OUT/stage2" \
  --max-steps 3300 --lr 5e-4 --seed 2 --max-time-min 6.0 --out "$OUT/stage3"
step $PCBM train --data "phantom:n=40000,seed=3,style=mix" "${common[@]}" $WORKERS --init "$OUT/stage3" \
  --max-steps 2000 --lr 2.5e-4 --seed 3 --max-time-min 3.6 --out "$OUT/stage4"
step $PCBM refit "$OUT/stage4" --data "phantom:n=40000,seed=0,style=mix" --data "hc18:${HC18}?split=train" \
  --weights 1,0.1 --per-source 2000 --out "$OUT/stage4r"
# Stage 5 ran on the 2-core CPU (about 73 minutes): head planes under randomised scanner styles.
step $PCBM train --init "$OUT/stage4r" --data "phantom:n=20000,seed=11,style=random,planes=head@2" \
  --data "phantom:n=20000,seed=12,style=mix@1.5" --data "hc18:${HC18}@0.5" --mode sequential --epochs 100 \
  --epoch-size 4000 --batch-size 16 --lr 1.5e-4 --seed 5 --max-steps "${STAGE5_STEPS:-1100}" --max-time-min 85 \
  --precision "$PRECISION" $WORKERS --quiet --out "$OUT/stage5"
step $PCBM refit "$OUT/stage5" --data "phantom:n=40000,seed=0,style=mix" --data "phantom:n=40000,seed=0,style=random" \
  --data "hc18:${HC18}?split=train" --weights 1,1,0.1 --per-source 2000 --out "$OUT/stage5r"
# Stages 6-8 (one H100 each): longer schedules of randomised scanners, every plane and heads.
stage() {  # stage NAME INIT LR STEPS SEED
  step $PCBM train --init "$2" --data "phantom:n=20000,seed=${5}1,style=random,planes=head@2" \
    --data "phantom:n=40000,seed=${5}2,style=random@1" --data "phantom:n=40000,seed=${5}3,style=mix@1.5" \
    --data "hc18:${HC18}@0.5" --mode sequential --epochs 100 --epoch-size 8000 --batch-size 32 --lr "$3" \
    --seed "$5" --max-steps "$4" --max-time-min 9 --accelerator auto --precision "$PRECISION" $WORKERS --quiet \
    --out "$OUT/$1"
}
stage stage6 "$OUT/stage5r" 3e-4 4000 6
stage stage7 "$OUT/stage6" 1.5e-4 5000 7
stage stage8 "$OUT/stage7" 8e-5 5000 8
step $PCBM refit "$OUT/stage8" --data "phantom:n=40000,seed=0,style=mix" --data "phantom:n=40000,seed=0,style=random" \
  --data "hc18:${HC18}?split=train" --weights 1,1,0.1 --per-source 2000 --out "$OUT/final"
real=(--data "phantom:n=40000,seed=21,style=mix@1.5" --data "phantom:n=20000,seed=22,style=random@0.5"
      --data "hc18:${HC18}@0.5" --data "alzubaidi:${ALZ}?val_fraction=0.3@0.25"
      --data "fetal_planes_db:${FPDB}?val_fraction=0.3@1" --data "african:${AFRICAN}?val_fraction=0.3@1")
step $PCBM train --init "$OUT/final" "${real[@]}" --lr 3e-4 --batch-size 16 --max-steps 420 --max-time-min 58 \
  --checkpoint-every 100 --epoch-size 4000 --epochs 100 --seed 32 --eval-limit 40 --refit-decision 600 \
  --refit-weights 1,1,0.1,0.3,3,3 --precision "$PRECISION" $WORKERS --quiet --out "$OUT/real"
# Two phantom-heavy, low-rate steps after it (2026-12-08: phantom F1 0.927 -> 0.950 -> 0.955, real held-out
# macro-F1 0.619 -> 0.614 -> 0.625; still below 0.96, so not shipped: bench/RESULTS.md). The second ran 125
# of its 160 steps on the 2-core CPU before --max-time-min stopped it.
keep() {  # keep NAME INIT LR SEED PHANTOM_SEED_PREFIX HEADS RANDOM MIX REAL
  step $PCBM train --init "$2" --data "phantom:n=20000,seed=${5}1,style=random,planes=head@$6" \
    --data "phantom:n=40000,seed=${5}2,style=random@$7" --data "phantom:n=40000,seed=${5}3,style=mix@$8" \
    --data "hc18:${HC18}@0.5" --data "alzubaidi:${ALZ}?val_fraction=0.3@0.2" \
    --data "fetal_planes_db:${FPDB}?val_fraction=0.3@$9" --data "african:${AFRICAN}?val_fraction=0.3@$9" \
    --lr "$3" --batch-size 16 --max-steps 160 --max-time-min 30 --checkpoint-every 50 --epoch-size 4000 --epochs 100 \
    --seed "$4" --eval-limit 40 --refit-decision 600 --refit-weights 1.5,1,2,0.1,0.3,2,2 --precision "$PRECISION" \
    $WORKERS --quiet --out "$OUT/$1"
}
keep real_keep1 "$OUT/real" 1e-4 34 4 1.5 1 2 0.6
keep real_keep2 "$OUT/real_keep1" 7e-5 35 5 1.5 1.5 3 0.5
if [[ ! -f "$OUT/real_keep2/reliability.json" ]]; then  # the training split of every source: the held-out 30 % stay unseen
  $PCBM calibrate "$OUT/real_keep2" --data "phantom:n=4000,seed=501,style=mix" --data "phantom:n=2000,seed=502,style=random" \
    --data "hc18:${HC18}?split=train" --data "alzubaidi:${ALZ}?split=train&val_fraction=0.3" \
    --data "fetal_planes_db:${FPDB}?split=train&val_fraction=0.3" --data "african:${AFRICAN}?split=train&val_fraction=0.3"
fi
echo "default model: $OUT/final (copy model.pt and config.json into pcbm/models/weights/); real-scans candidate: $OUT/real_keep2"
