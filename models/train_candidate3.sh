#!/usr/bin/env bash
# Stage 2 of the default model 3.0 candidate: from a stage-1 model (the shipped 2.2.0, or
# models/reproduce_default.sh's export), train on the catalogue's real voices, places and human
# sounds with channels on two thirds of the recordings (models/recipes/candidate3.yaml), then
# calibrate and tune on dev + val. Run it again after an interruption: finished steps are skipped
# and training resumes from its last checkpoint.
# Usage: models/train_candidate3.sh [WORK_DIR] [STAGE1_MODEL]
# SOURCES (default WORK/sources) holds the catalogue's sources; MIRROR, a folder of bare git
# repositories named owner+name, is tried before GitHub; LOCAL="name=DIR ..." takes sources from
# folders on a machine without network.
set -euo pipefail
WORK=${1:-data/candidate3}
STAGE1=${2:-models/pretrained/default}
T=${OCML_TRAIN:-ocml-train}
DEV=${DEV:-../shared/data/dev}
VAL=${VAL:-../shared/data/val}
SOURCES=${SOURCES:-$WORK/sources}
mkdir -p "$WORK"

local_args=(); for item in ${LOCAL:-}; do local_args+=(--local "$item"); done
$T sources fetch "$SOURCES" ${MIRROR:+--mirror "$MIRROR"} "${local_args[@]}"
[ -f "$WORK/synth/manifest.json" ] || $T synth "$WORK/synth" --recipe candidate3 --sources "$SOURCES"
[ -f "$WORK/spec/index.json" ] || $T spectrograms "$WORK/synth" "$WORK/spec"
if [ ! -d "$WORK/run/savedmodel" ]; then
  resume=(); [ -f "$WORK/run/checkpoints/last.weights.h5" ] && resume=(--resume)
  $T train --recipe candidate3 --data "$WORK/spec" --out "$WORK/run" --init-from "$STAGE1" \
      "${resume[@]}"
fi
$T calibrate "$WORK/run" "$DEV" "$VAL" --out "$WORK/export" --json "$WORK/calibration.json" \
    --threads 1 --overwrite
echo "candidate in $WORK/export: compare with benchmarks/accuracy.py --model $WORK/export"
